"""Environment variables: every one starts with ISHAN_; the original names stay as aliases.

Precedence, for each kind of alias: default < alias < ISHAN_ name < flag. The infer names are
the original inference engine's (MODEL_PATH, HOST, PORT, WORKER_ID, WORKER_URL,
COORDINATOR_URL); the migrate URI's are MONGODB_URI and the original migration plugin's
DB_URL.
"""

from __future__ import annotations

from typing import Any

import pytest
import typer
from typer.testing import CliRunner

from ishan_tools.cli import app
from ishan_tools.infer.cli import app as infer_app

ALIASES = ("MODEL_PATH", "HOST", "PORT", "WORKER_ID", "WORKER_URL", "COORDINATOR_URL")
NAMES = (
    "ISHAN_INFER_MODEL",
    "ISHAN_INFER_HOST",
    "ISHAN_INFER_PORT",
    "ISHAN_INFER_WORKER_ID",
    "ISHAN_INFER_WORKER_URL",
    "ISHAN_INFER_COORDINATOR_URL",
)
URI_NAMES = ("ISHAN_MIGRATE_URI", "MONGODB_URI", "DB_URL")


@pytest.fixture(autouse=True)
def _clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in (*ALIASES, *NAMES, *URI_NAMES):
        monkeypatch.delenv(name, raising=False)


def worker_params(*args: str) -> dict[str, Any]:
    """What `ishan infer worker ARGS` is called with: the real command line, parsed."""
    group: Any = typer.main.get_command(infer_app)
    command = group.get_command(group.context_class(group), "worker")
    assert command is not None
    with command.make_context("worker", list(args)) as ctx:
        return dict(ctx.params)


def test_infer_worker_defaults() -> None:
    params = worker_params()
    assert (params["host"], params["port"], params["worker_id"]) == ("127.0.0.1", 3001, "worker-1")
    assert params["model"] is None
    assert params["worker_url"] is None and not params["coordinator_url"]


@pytest.mark.parametrize(("name", "alias"), list(zip(NAMES, ALIASES, strict=True)))
def test_infer_alias_then_ishan_name_then_flag(
    monkeypatch: pytest.MonkeyPatch, name: str, alias: str
) -> None:
    param = {"ISHAN_INFER_MODEL": "model"}.get(name, name.removeprefix("ISHAN_INFER_").lower())
    flag = "--" + param.replace("_", "-")
    values = {"PORT": ("4001", "4002", "4003")}.get(alias.split("_")[-1], ("a", "b", "c"))
    by_alias, by_name, by_flag = values

    def seen(*args: str) -> str:
        value = worker_params(*args)[param]
        return " ".join(value) if isinstance(value, list | tuple) else str(value)

    monkeypatch.setenv(alias, by_alias)
    assert seen() == by_alias
    monkeypatch.setenv(name, by_name)
    assert seen() == by_name
    assert seen(flag, by_flag) == by_flag
    monkeypatch.delenv(alias)
    assert seen() == by_name


def test_infer_worker_write_timeout_default_then_ishan_name_then_flag(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """--write-timeout (30 s) has one name, ISHAN_INFER_WRITE_TIMEOUT, which `serve`'s
    workers inherit like the other engine settings."""
    monkeypatch.delenv("ISHAN_INFER_WRITE_TIMEOUT", raising=False)
    assert worker_params()["write_timeout"] == 30.0
    monkeypatch.setenv("ISHAN_INFER_WRITE_TIMEOUT", "5")
    assert worker_params()["write_timeout"] == 5.0
    assert worker_params("--write-timeout", "2")["write_timeout"] == 2.0


def test_infer_help_documents_both_names() -> None:
    result = CliRunner().invoke(app, ["infer", "worker", "--help"], env={"COLUMNS": "200"})
    assert result.exit_code == 0
    for name, alias in zip(NAMES, ALIASES, strict=True):
        assert f"{name}, {alias}" in result.output


def migrate_reaches(*args: str, **env: str) -> str:
    """The server `ishan migrate status` tried to reach (none answers on ports 1 to 4)."""
    result = CliRunner().invoke(app, ["migrate", "status", "--timeout", "0.3", *args], env=env)
    assert result.exit_code == 1, result.output
    line = result.stderr.strip()
    assert len(line.splitlines()) == 1
    assert "cannot reach " in line, line
    return line.split("cannot reach ", 1)[1].split()[0]


@pytest.mark.parametrize("alias", ["MONGODB_URI", "DB_URL"])
def test_migrate_uri_alias_then_ishan_name_then_flag(alias: str) -> None:
    assert migrate_reaches(**{alias: "mongodb://127.0.0.1:1/a"}) == "mongodb://127.0.0.1:1/a"
    both = {alias: "mongodb://127.0.0.1:1/a", "ISHAN_MIGRATE_URI": "mongodb://127.0.0.1:2/b"}
    assert migrate_reaches(**both) == "mongodb://127.0.0.1:2/b"
    flag = migrate_reaches("--uri", "mongodb://127.0.0.1:3/c", **both)
    assert flag == "mongodb://127.0.0.1:3/c"


def test_migrate_uri_aliases_rank_as_documented() -> None:
    """MONGODB_URI (this toolkit's earlier name) before DB_URL (the plugin's)."""
    env = {"MONGODB_URI": "mongodb://127.0.0.1:1/a", "DB_URL": "mongodb://127.0.0.1:4/d"}
    assert migrate_reaches(**env) == "mongodb://127.0.0.1:1/a"


def test_serve_workers_inherit_neither_name_of_a_per_process_variable(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """`ishan infer serve` gives each worker its own --host, --port, --model and id: a worker
    that read the coordinator's port from the environment would fail to bind it."""
    from ishan_tools.infer.coordinator.supervisor import child_env

    for name in (*NAMES, *ALIASES):
        monkeypatch.setenv(name, "coordinator's")
    monkeypatch.setenv("ISHAN_INFER_CTX", "512")
    env = child_env(api_key=None)
    assert not {*NAMES, *ALIASES} & set(env)
    assert env["ISHAN_INFER_CTX"] == "512"
