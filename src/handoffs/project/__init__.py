"""The project wing: `handoffs.toml` and job files, loading a roster by path, and running a job."""

from handoffs.project._alert_settings import AlertSettings
from handoffs.project._alert_store import AlertStore
from handoffs.project._alerting import Alert, AlertWatch, alert_watch
from handoffs.project._candidate import candidate_toml, nominal_prices
from handoffs.project._config import Config, config_from_dict, load_config
from handoffs.project._drift import check_drift, drift_stamp
from handoffs.project._drift_settings import DriftSettings
from handoffs.project._files import (
    ConfigFile,
    JobFile,
    JobsTable,
    json_schema,
    parse,
    read,
    read_toml,
)
from handoffs.project._gold import GoldScore, load_gold, score_gold
from handoffs.project._job import JobReport, JobSpec, load_job
from handoffs.project._qualify import (
    Qualified,
    RecordedTask,
    read_recorded,
    recorded_job,
    run_qualification,
)
from handoffs.project._roster import load_module
from handoffs.project._run import (
    configured_session,
    job_simulation,
    open_portfolio,
    run_job,
    setting_line,
    single_model,
)
from handoffs.project._snapshot import JobSnapshot
from handoffs.project._watch import breaker_readings, budget_reading

__all__ = [
    "Alert",
    "AlertSettings",
    "AlertStore",
    "AlertWatch",
    "Config",
    "ConfigFile",
    "DriftSettings",
    "GoldScore",
    "JobFile",
    "JobReport",
    "JobSnapshot",
    "JobSpec",
    "JobsTable",
    "Qualified",
    "RecordedTask",
    "alert_watch",
    "breaker_readings",
    "budget_reading",
    "candidate_toml",
    "check_drift",
    "config_from_dict",
    "configured_session",
    "drift_stamp",
    "job_simulation",
    "json_schema",
    "load_config",
    "load_gold",
    "load_job",
    "load_module",
    "nominal_prices",
    "open_portfolio",
    "parse",
    "read",
    "read_recorded",
    "read_toml",
    "recorded_job",
    "run_job",
    "run_qualification",
    "score_gold",
    "setting_line",
    "single_model",
]
