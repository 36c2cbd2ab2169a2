"""What a durable job was submitted with, as data it can journal: `JobSnapshot`.

A job in the jobs database may start minutes after it was submitted and resume hours later, on
another machine. If it re-read `handoffs.toml` and its job file there, an edit in between would
give the replay another budget, roster or catalog than the journal was written with. So the job's
workflow input is a snapshot, taken at submit:

- `handoffs.toml` and the job file, validated (`ConfigFile`, `JobFile`) and dumped as JSON, every
  model's prices stated (so a new genai-prices release does not reprice a job in flight);
- the job's input data, as read;
- the SHA-256 of each file the job can only load by path: the roster and tools modules it
  imported, and the `[policy] scorer`. A job whose files changed is refused, in one line, rather
  than replayed with other code.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict

from handoffs.errors import ConfigError
from handoffs.project._config import Config, beside, config_from_file
from handoffs.project._files import ConfigFile, JobFile, read
from handoffs.project._job import JobSpec, job_data, job_spec
from handoffs.project._roster import digest, load_module, loaded_files

__all__ = ["JobSnapshot"]

_MISSING = "missing"
"""The digest recorded for a file that could not be read."""


class JobSnapshot(BaseModel):
    """A job and its `handoffs.toml` as submitted: what its workflow runs and resumes with."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    job_path: str
    """The job file's absolute path: its roster and tools are found relative to it."""
    config_path: str
    """`handoffs.toml`'s absolute path: its scorer and outcome log are found relative to it."""
    config: ConfigFile
    """`handoffs.toml` as validated at submit, every model's prices stated."""
    job: JobFile
    """The job file as validated at submit."""
    data: Any = None
    """The job's input data as read at submit."""
    files: dict[str, str] = {}
    """SHA-256 of each file the job loads by path (roster and tools modules, the scorer)."""

    @classmethod
    def take(cls, job: Path, config: Path) -> tuple[JobSnapshot, Config, JobSpec]:
        """Read and validate the job file `job` and the config file `config` (absolute paths),
        load the job's roster, and snapshot them; a `ConfigError` if anything is invalid."""
        config_file = read(ConfigFile, config, "config file")
        settings = config_from_file(config_file, path=config)
        job_file = read(JobFile, job, "job file")
        spec = job_spec(job_file, path=job, catalog=settings.catalog, data=job_data(job_file, job))
        if spec.simulation is not None:
            load_module(spec.roster, spec.simulation)  # fingerprinted with the rest of the roster
        files = loaded_files()
        if config_file.policy.scorer is not None:
            files.append(beside(config, config_file.policy.scorer))
        snapshot = cls(
            job_path=str(job),
            config_path=str(config),
            config=config_file.priced(),
            job=job_file,
            data=spec.data,
            files={str(f): digest(f) or _MISSING for f in files},
        )
        return snapshot, settings, spec

    def restore(self) -> tuple[Config, JobSpec]:
        """The job's `Config` and `JobSpec` as submitted (its roster loaded again); a
        `ConfigError` if a file it loads by path has changed since."""
        for name, recorded in self.files.items():
            if (digest(Path(name)) or _MISSING) != recorded:
                raise ConfigError(
                    f"{name} has changed since the job was submitted, and a durable job runs "
                    "only with the roster it was submitted with: submit the job again to run it "
                    "with the new one"
                )
        config = config_from_file(self.config, path=Path(self.config_path))
        spec = job_spec(self.job, path=Path(self.job_path), catalog=config.catalog, data=self.data)
        return config, spec
