"""The project wing: `handoffs.toml` and job files, loading a roster by path, and running a job."""

from handoffs.project._config import Config, config_from_dict, load_config
from handoffs.project._files import (
    ConfigFile,
    JobFile,
    JobsTable,
    json_schema,
    parse,
    read,
    read_toml,
)
from handoffs.project._job import JobReport, JobSpec, load_job
from handoffs.project._roster import load_module
from handoffs.project._run import (
    configured_session,
    job_simulation,
    open_portfolio,
    run_job,
    setting_line,
)
from handoffs.project._snapshot import JobSnapshot

__all__ = [
    "Config",
    "ConfigFile",
    "JobFile",
    "JobReport",
    "JobSnapshot",
    "JobSpec",
    "JobsTable",
    "config_from_dict",
    "configured_session",
    "job_simulation",
    "json_schema",
    "load_config",
    "load_job",
    "load_module",
    "open_portfolio",
    "parse",
    "read",
    "read_toml",
    "run_job",
    "setting_line",
]
