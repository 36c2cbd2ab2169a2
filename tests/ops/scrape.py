"""Series from a real handoffs run, scraped through the OpenTelemetry Prometheus exporter and
written as `promtool test rules` input.

A `Scrapes` owns a meter provider whose reader is the OTel Prometheus exporter on a private
registry; `scrape()` renders the exposition text (what Prometheus would fetch from /metrics) and
parses it back. Sample i stands for the scrape at i x `interval`: the run is real, the clock
between scrapes is the test's.
"""

from __future__ import annotations

import math
import re
import shutil
import subprocess
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml
from opentelemetry.exporter.prometheus import PrometheusMetricReader
from opentelemetry.sdk.metrics import MeterProvider
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from handoffs.tracing._export import job_resource

ROOT = Path(__file__).resolve().parents[2]
RULES = ROOT / "ops" / "prometheus" / "alerts.yml"
DASHBOARD = ROOT / "ops" / "grafana" / "handoffs.json"
PROMTOOL = shutil.which("promtool")


def _quote(value: str) -> str:
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'


def series_name(name: str, labels: Mapping[str, str]) -> str:
    """`name{a="1",b="2"}` in PromQL selector syntax, labels sorted."""
    inner = ",".join(f"{k}={_quote(v)}" for k, v in sorted(labels.items()))
    return f"{name}{{{inner}}}"


class Scrapes:
    """The exposition of one run's meter provider, scraped once per round."""

    def __init__(self, job_id: str) -> None:
        self.registry = CollectorRegistry()
        self.reader = PrometheusMetricReader(registry=self.registry)
        self.provider = MeterProvider(metric_readers=[self.reader], resource=job_resource(job_id))
        self.samples: list[dict[str, float]] = []
        self.text = ""

    def scrape(self) -> None:
        self.text = generate_latest(self.registry).decode()
        sample: dict[str, float] = {}
        for family in text_string_to_metric_families(self.text):
            for s in family.samples:
                sample[series_name(s.name, s.labels)] = s.value
        self.samples.append(sample)

    def names(self) -> set[str]:
        """Every metric name the exposition held at some scrape."""
        return {key.partition("{")[0] for sample in self.samples for key in sample}

    def input_series(self) -> list[dict[str, str]]:
        """promtool `input_series`: one value per scrape, `_` before a series first appeared."""
        keys = sorted({key for sample in self.samples for key in sample})
        out: list[dict[str, str]] = []
        for key in keys:
            values = []
            for sample in self.samples:
                value = sample.get(key)
                values.append("_" if value is None or math.isnan(value) else repr(float(value)))
            out.append({"series": key, "values": " ".join(values)})
        return out


_LABEL = re.compile(r"\{\{\s*\$labels\.(\w+)\s*\}\}")


def rules() -> dict[str, dict[str, Any]]:
    """The shipped alert rules by name."""
    doc = yaml.safe_load(RULES.read_text())
    return {r["alert"]: r for g in doc["groups"] for r in g["rules"] if "alert" in r}


def expected(alert: str, **labels: str) -> dict[str, Any]:
    """An expected firing alert: its labels and its annotations rendered with them (the shipped
    annotations read only `$labels`)."""
    rule = rules()[alert]
    full = {**rule.get("labels", {}), **labels}
    notes = {k: _LABEL.sub(lambda m: full[m.group(1)], v) for k, v in rule["annotations"].items()}
    return {"exp_labels": full, "exp_annotations": notes}


def promtool_test(
    tmp: Path, scrapes: Scrapes, interval: str, checks: list[dict[str, Any]]
) -> subprocess.CompletedProcess[str]:
    """Run `promtool test rules` on the shipped rules with the scraped series."""
    assert PROMTOOL is not None
    doc = {
        "rule_files": [str(RULES)],
        "evaluation_interval": "1m",
        "tests": [
            {
                "interval": interval,
                "input_series": scrapes.input_series(),
                "alert_rule_test": checks,
            }
        ],
    }
    path = tmp / "alerts.test.yml"
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    return subprocess.run(
        [PROMTOOL, "test", "rules", str(path)], capture_output=True, text=True, timeout=120
    )
