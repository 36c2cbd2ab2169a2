"""`handoffs.toml` and job files as data: every key checked by the file models, every mistake one
line naming the file and the key, exit code 2 from the CLI, and the JSON Schema editors use."""

from __future__ import annotations

import json
import tomllib
from pathlib import Path
from typing import Any

import jsonschema
import pytest
from typer.testing import CliRunner

from handoffs.catalog import Catalog
from handoffs.cli import app
from handoffs.errors import ConfigError
from handoffs.project._config import config_from_dict, load_config
from handoffs.project._files import ConfigFile, JobFile
from handoffs.project._job import load_job
from handoffs.routing._router import Policy, Rule

ROOT = Path(__file__).resolve().parents[1]
CONFIG = ROOT / "handoffs.toml"
JOBS = sorted((ROOT / "examples" / "jobs").glob("*.toml"))
JOB = ROOT / "examples" / "jobs" / "support-triage.toml"


def base() -> dict[str, Any]:
    with CONFIG.open("rb") as fh:
        return tomllib.load(fh)


def refused(data: dict[str, Any]) -> str:
    with pytest.raises(ConfigError) as caught:
        config_from_dict(data)
    message = str(caught.value)
    assert "\n" not in message
    return message


def write_job(tmp_path: Path, **changes: Any) -> Path:
    """The bundled job with `changes` (None removes a key), written beside it as TOML."""
    with JOB.open("rb") as fh:
        data: dict[str, Any] = tomllib.load(fh)
    for key, value in changes.items():
        if value is None:
            data.pop(key, None)
        else:
            data[key] = value
    for key in ("roster", "tools", "data", "gold"):  # absolute: the copy lives elsewhere
        if isinstance(data.get(key), str):
            data[key] = str((JOB.parent / data[key]).resolve())
    path = tmp_path / "job.toml"
    path.write_text("".join(f"{k} = {json.dumps(v)}\n" for k, v in data.items()))
    return path


# --- [policy] ---------------------------------------------------------------------------------

POLICY = {
    "rules": [
        {"kind": "classify", "risk": "low", "ladder": ["local", "mid"]},
        {"name": "risky", "risk": "high", "ladder": ["frontier"]},
        {"kind": "extract", "ladder": ["mid", "frontier"]},
    ]
}


def test_policy_rules_become_the_routing_rules_in_order() -> None:
    config = config_from_dict({**base(), "policy": POLICY})
    assert config.policy.rules == (
        Rule(kind="classify", risk="low", ladder=("local", "mid")),
        Rule(name="risky", risk="high", ladder=("frontier",)),
        Rule(kind="extract", ladder=("mid", "frontier")),
    )


def test_no_policy_rules_is_the_default_matrix_from_the_tiers() -> None:
    data = base()
    del data["policy"]
    config = config_from_dict(data)
    assert config.policy == Policy.matrix(config.catalog)


@pytest.mark.parametrize(
    ("policy", "message"),
    [
        ({"rules": {"ladder": ["mid"]}}, "config: policy.rules: must be an array"),
        ({"rules": ["mid"]}, "config: policy.rules[0]: must be a table (got 'mid')"),
        (
            {"rules": [{"ladder": ["mid"], "model": "x"}]},
            "config: policy.rules[0].model: unknown key",
        ),
        ({"rules": [{"ladder": "mid"}]}, "config: policy.rules[0].ladder: must be an array"),
        (
            {"rules": [{"ladder": ["mid", 3]}]},
            "config: policy.rules[0].ladder[1]: must be a string (got 3)",
        ),
        ({"rules": [{"kind": "classify"}]}, "config: policy.rules[0].ladder: is required"),
        ({"rules": [{"ladder": []}]}, "config: policy.rules[0].ladder: must not be empty"),
        (
            {"rules": [{"risk": "severe", "ladder": ["mid"]}]},
            "config: policy.rules[0].risk: must be one of low, medium, high, * (got 'severe')",
        ),
        ({"rule": [{"ladder": ["mid"]}]}, "config: policy.rule: unknown key"),
        (
            {"rules": [{"name": "typo", "ladder": ["mdi"]}]},
            "config: rule 'typo' names unknown model id 'mdi'",
        ),
        ({"min_pass": 2}, "config: policy.min_pass: must be at most 1 (got 2)"),
        ({"scorer": ""}, "config: policy.scorer: must not be empty"),
    ],
)
def test_a_malformed_policy_is_one_line_naming_the_key(
    policy: dict[str, Any], message: str
) -> None:
    assert refused({**base(), "policy": policy}).startswith(message)


# --- every table refuses what it does not know --------------------------------------------------

UNKNOWN_KEYS = [
    ((), "colour"),
    (("portfolio",), "simulate"),
    (("models", "mid"), "temperature"),
    (("policy",), "ladder"),
    (("health",), "cooldown"),
    (("retry",), "attempts"),
    (("jobs",), "database"),
]


@pytest.mark.parametrize(("table", "key"), UNKNOWN_KEYS, ids=[k for _, k in UNKNOWN_KEYS])
def test_an_unknown_key_anywhere_in_the_config_is_refused_by_its_path(
    table: tuple[str, ...], key: str
) -> None:
    data = base()
    where = data
    for name in table:
        where = where.setdefault(name, {})
    where[key] = 1
    path = ".".join((*table, key))
    assert refused(data) == f"config: {path}: unknown key"


def test_an_unknown_key_in_a_rule_or_a_cap_is_refused_by_its_path() -> None:
    data = base()
    data["policy"]["rules"][1]["ladders"] = ["mid"]
    assert refused(data) == "config: policy.rules[1].ladders: unknown key"
    data = base()
    data["caps"] = [{"usd": 1}, {"usd": 1, "periode": "day"}]
    assert refused(data) == "config: caps[1].periode: unknown key"


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda d: d.update(portfolio=True), "config: portfolio: must be a table (got True)"),
        (
            lambda d: d["portfolio"].update(simulate_missing_keys="yes"),
            "config: portfolio.simulate_missing_keys: must be true or false (got 'yes')",
        ),
        (
            lambda d: d["portfolio"].update(request_timeout_s="60"),
            "config: portfolio.request_timeout_s: must be a number (got '60')",
        ),
        (
            lambda d: d["models"]["local"].update(max_concurrency=1.5),
            "config: models.local.max_concurrency: must be an integer (got 1.5)",
        ),
        (
            lambda d: d["models"]["local"].update(base_url=8080),
            "config: models.local.base_url: must be a string (got 8080)",
        ),
        (
            lambda d: d["health"].update(window="20"),
            "config: health.window: must be an integer (got '20')",
        ),
        (
            lambda d: d["retry"].update(first_event_timeout_s=[15]),
            "config: retry.first_event_timeout_s: must be a number (got [15])",
        ),
        (lambda d: d.update(models={}), "config: models: must not be empty"),
        (lambda d: d.pop("models"), "config: models: is required"),
    ],
)
def test_a_wrong_type_names_the_key(edit: Any, message: str) -> None:
    data = base()
    edit(data)
    assert refused(data).startswith(message)


def test_several_problems_are_one_line_with_a_count() -> None:
    data = base()
    data["health"] = {"window": 0, "cooldown": 1, "error_rate": "x"}
    assert refused(data) == (
        "config: health.error_rate: must be a number (got 'x'); and 2 more problems"
    )


def test_a_model_id_or_name_with_control_or_bidi_characters_is_refused() -> None:
    data = base()
    data["models"]["mid"]["name"] = "gpt\u202e4"
    message = refused(data)
    assert message.startswith("config: models.mid.name: must not contain control")
    assert "\u202e" not in message and "\\u202e" in message
    data = base()
    data["policy"]["rules"][0]["kind"] = "classify\x1b[31m"
    assert refused(data).startswith("config: policy.rules[0].kind: must not contain control")


def test_the_file_is_named_in_every_message(tmp_path: Path) -> None:
    path = tmp_path / "handoffs.toml"
    path.write_text(CONFIG.read_text().replace('tier = "mid"', 'tier = "huge"', 1))
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    assert str(caught.value) == (
        f"{path}: models.mid.tier: must be one of frontier, mid, small, local (got 'huge')"
    )
    path.write_text(CONFIG.read_text().replace('failover = ["mid-anthropic"]', 'failover = ["x"]'))
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    assert str(caught.value) == f"{path}: model 'mid': failover names unknown model id 'x'"


def test_retry_and_health_tables_default_to_the_runtime_defaults() -> None:
    data = base()
    del data["retry"], data["health"]
    config = config_from_dict(data)
    assert config.retry.max_attempts == 8 and config.health.failure_threshold == 3
    data["retry"] = {"first_event_timeout_s": 0, "request_timeout_s": 30}
    config = config_from_dict(data)
    assert config.retry.first_event_timeout_s is None  # 0 turns the first-token deadline off
    assert config.retry.request_timeout_s == 30 and config.request_timeout_s == 60


# --- job files --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("budget", "problem"),
    [
        ("1e400", "must be at most 1000000 (got '1e400')"),
        ("nan", "must be a finite amount (got 'nan')"),
        ("-1", "must not be negative (got '-1')"),
        (-0.5, "must not be negative (got -0.5)"),
        (float("inf"), "must be a finite amount (got inf)"),
        (2_000_000, "must be at most 1000000 (got 2000000)"),
        ("0,50", "must be an amount in USD, such as \"0.50\" (got '0,50')"),
        (True, 'must be an amount in USD: a number, or a string such as "0.50" (got True)'),
    ],
)
def test_an_absurd_budget_is_refused(tmp_path: Path, budget: Any, problem: str) -> None:
    job = tmp_path / "job.toml"
    data = tomllib.loads(JOB.read_text()) | {"budget_usd": budget}
    job.write_text(
        "".join(f"{k} = {v if isinstance(v, float) else json.dumps(v)}\n" for k, v in data.items())
    )
    catalog = load_config(CONFIG).catalog
    with pytest.raises(ConfigError) as caught:
        load_job(job, catalog)
    assert str(caught.value) == f"{job}: budget_usd: {problem}"


def test_a_budget_reads_as_the_decimal_it_is_written_as(tmp_path: Path) -> None:
    catalog = load_config(CONFIG).catalog
    assert str(load_job(write_job(tmp_path, budget_usd="0.50"), catalog).budget_usd) == "0.50"
    assert str(load_job(write_job(tmp_path, budget_usd=0.1), catalog).budget_usd) == "0.1"
    assert load_job(write_job(tmp_path, budget_usd=None), catalog).budget_usd is None


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"owner": "me"}, "owner: unknown key"),
        ({"name": "triage\u202egnp.exe"}, "name: must not contain control"),
        ({"name": "a\nb"}, "name: must not contain control"),
        ({"name": ""}, "name: must not be empty"),
        ({"subordinates": ["classifier", "writer\u2066"]}, "subordinates[1]: must not contain"),
        ({"subordinates": []}, "subordinates: must not be empty"),
        ({"subordinates": "classifier"}, "subordinates: must be an array (got 'classifier')"),
        ({"orchestrator": None}, "orchestrator: is required"),
        ({"goal": 42}, "goal: must be a string (got 42)"),
        ({"max_handoffs": 0}, "max_handoffs: must be at least 1 (got 0)"),
        ({"max_handoffs": "10"}, "max_handoffs: must be an integer (got '10')"),
    ],
)
def test_a_malformed_job_file_is_one_line_naming_the_key(
    tmp_path: Path, changes: dict[str, Any], message: str
) -> None:
    job = write_job(tmp_path, **changes)
    with pytest.raises(ConfigError) as caught:
        load_job(job, load_config(CONFIG).catalog)
    assert str(caught.value).startswith(f"{job}: {message}"), str(caught.value)
    assert "\n" not in str(caught.value)


# --- the CLI ----------------------------------------------------------------------------------


def _exit_2_with_one_line(args: list[str], *needles: str) -> None:
    result = CliRunner(env={"COLUMNS": "300"}).invoke(app, args)
    stderr: str = result.stderr
    assert result.exit_code == 2, (result.stdout, stderr)
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error:"), stderr
    assert "Traceback" not in stderr
    for needle in needles:
        assert needle in lines[0], lines[0]


@pytest.mark.parametrize(
    ("changes", "needle"),
    [
        ({"budget_usd": "1e400"}, "budget_usd: must be at most 1000000"),
        ({"budget_usd": "nan"}, "budget_usd: must be a finite amount"),
        ({"budget_usd": "-1"}, "budget_usd: must not be negative"),
        ({"priority": 1}, "priority: unknown key"),
        ({"max_handoffs": "lots"}, "max_handoffs: must be an integer"),
        ({"name": "job\u202e"}, "name: must not contain control"),
    ],
)
def test_the_cli_refuses_a_bad_job_file_in_one_line_with_exit_2(
    tmp_path: Path, changes: dict[str, Any], needle: str
) -> None:
    job = write_job(tmp_path, **changes)
    _exit_2_with_one_line(
        ["run", str(job), "--config", str(CONFIG), "--trace-dir", str(tmp_path)], needle
    )


@pytest.mark.parametrize(
    ("old", "new", "needle"),
    [
        ("\nwindow = 20", "\nwindow = 20\nwindows = 3", "health.windows: unknown key"),
        ('tier = "local"', 'tier = "tiny"', "models.local.tier: must be one of"),
        ("max_attempts = 8", 'max_attempts = "8"', "retry.max_attempts: must be an integer"),
        (
            'output_usd_per_mtok = "0.02"',
            'output_usd_per_mtok = "nan"',
            "models.local.output_usd_per_mtok: must be a finite amount (got 'nan')",
        ),
    ],
)
def test_the_cli_refuses_a_bad_config_in_one_line_with_exit_2(
    tmp_path: Path, old: str, new: str, needle: str
) -> None:
    config = tmp_path / "handoffs.toml"
    assert old in CONFIG.read_text()
    config.write_text(CONFIG.read_text().replace(old, new, 1))
    for command in (
        ["run", str(JOB), "--config", str(config), "--trace-dir", str(tmp_path)],
        ["doctor", "--config", str(config)],
    ):
        _exit_2_with_one_line(command, f"{config}: {needle}")


# --- the schema -------------------------------------------------------------------------------


def _schema(*args: str) -> dict[str, Any]:
    result = CliRunner().invoke(app, ["config", "schema", *args])
    assert result.exit_code == 0, result.output
    document: dict[str, Any] = json.loads(result.stdout)  # stdout is the one JSON document
    jsonschema.Draft202012Validator.check_schema(document)
    return document


def _as_json(path: Path) -> Any:
    """A TOML file as the JSON an editor's language server checks against the schema."""
    with path.open("rb") as fh:
        return json.loads(json.dumps(tomllib.load(fh)))


def test_the_config_schema_accepts_the_shipped_config_and_refuses_an_unknown_key() -> None:
    schema = _schema()
    assert schema["title"] == "handoffs.toml"
    jsonschema.validate(_as_json(CONFIG), schema)
    bad = _as_json(CONFIG)
    bad["models"]["mid"]["temperature"] = 0.2
    with pytest.raises(jsonschema.ValidationError, match="temperature"):
        jsonschema.validate(bad, schema)
    bad = _as_json(CONFIG)
    bad["retry"]["max_attempts"] = 0
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(bad, schema)


@pytest.mark.parametrize("job", JOBS, ids=[j.name for j in JOBS])
def test_the_job_schema_accepts_the_example_jobs_and_refuses_an_unknown_key(job: Path) -> None:
    schema = _schema("--job", "--json")
    assert schema["title"] == "handoffs job file"
    jsonschema.validate(_as_json(job), schema)
    with pytest.raises(jsonschema.ValidationError, match="owner"):
        jsonschema.validate({**_as_json(job), "owner": "me"}, schema)
    for budget in ("1e400", "-1", "nan", -1):
        with pytest.raises(jsonschema.ValidationError):
            jsonschema.validate({**_as_json(job), "budget_usd": budget}, schema)


def test_the_schema_documents_every_key_the_loader_reads() -> None:
    schema = _schema()
    assert set(schema["properties"]) == set(ConfigFile.model_fields)
    model = schema["$defs"]["ModelTable"]
    assert "The provider's own model name" in model["properties"]["name"]["description"]
    assert set(_schema("--job")["properties"]) == set(JobFile.model_fields)


def test_the_shipped_files_round_trip_through_their_models() -> None:
    """What a durable job journals (the models dumped as JSON) loads back as the same thing."""
    config = ConfigFile.model_validate(base())
    again = ConfigFile.model_validate(json.loads(config.model_dump_json()))
    assert again == config
    with JOB.open("rb") as fh:
        job = JobFile.model_validate(tomllib.load(fh))
    assert JobFile.model_validate(json.loads(job.model_dump_json())) == job
    priced = config.priced()
    assert all(t.input_usd_per_mtok is not None for t in priced.models.values())
    assert Catalog.from_dict(priced.model_dump()["models"]) == Catalog.from_dict(base()["models"])
