"""The baselines of the infer benchmark: llama.cpp's own llama-server (built once, cached),
llama-cpp-python's server, and llama-cpp-python called in this process (direct)."""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
from collections.abc import Callable
from importlib.metadata import version
from pathlib import Path
from typing import Any

import httpx
from llama_cpp import Llama

from ishan_tools.infer.timing import StreamTimer

from .clients import Lines, Server, Timed, sse_stream

CACHE = Path.home() / ".cache" / "ishan-bench"
NOT_BUILT = (
    "llama-server is not built: {binary} is missing. Build it once (10-20 minutes on "
    "2 cores) with\n  python -m bench.infer --build-llama-server\nwhich runs `pip "
    "download --no-binary :all: --no-deps llama-cpp-python==VERSION`, then CMake on "
    "its vendor/llama.cpp with -DLLAMA_BUILD_SERVER=ON -DLLAMA_CURL=OFF "
    "-DLLAMA_USE_PREBUILT_UI=OFF, target llama-server. Or run without that row: "
    "--without-llama-server."
)
Ready = tuple[str, Callable[[httpx.Response], bool]]  # a health path, and when it says ready


def llama_server_path() -> Path:
    return CACHE / f"llama-server-{version('llama_cpp_python')}" / "llama-server"


def build_llama_server() -> Path:
    """Build llama-server from the sdist of the installed llama-cpp-python, once."""
    target, ver = llama_server_path(), version("llama_cpp_python")
    if target.exists():
        return target
    work = CACHE / f"build-{ver}"
    with tempfile.TemporaryDirectory() as tmp:
        subprocess.run(
            [sys.executable, "-m", "pip", "download", "--no-binary", ":all:", "--no-deps",
             f"llama-cpp-python=={ver}", "-d", tmp],
            check=True,
        )  # fmt: skip
        [sdist] = Path(tmp).glob("*.tar.gz")
        with tarfile.open(sdist) as archive:
            archive.extractall(tmp, filter="data")
        source = next(Path(tmp).glob("llama_cpp_python-*")) / "vendor" / "llama.cpp"
        subprocess.run(
            ["cmake", "-S", str(source), "-B", str(work), "-DCMAKE_BUILD_TYPE=Release",
             "-DLLAMA_BUILD_SERVER=ON", "-DLLAMA_CURL=OFF", "-DLLAMA_USE_PREBUILT_UI=OFF",
             "-DLLAMA_BUILD_TESTS=OFF", "-DLLAMA_BUILD_EXAMPLES=OFF", "-DBUILD_SHARED_LIBS=OFF"],
            check=True,
        )  # fmt: skip
        jobs = str(os.cpu_count() or 2)
        subprocess.run(
            ["cmake", "--build", str(work), "--target", "llama-server", "-j", jobs], check=True
        )
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.copy2(work / "bin" / "llama-server", target)
    return target


def commands(
    binary: Path, model: Path, args: argparse.Namespace, ports: dict[str, int]
) -> dict[str, list[str]]:
    """The command lines of the two baseline servers."""
    threads, clients = str(args.threads), args.clients
    return {
        "llama-server": [
            str(binary), "-m", str(model), "-np", str(clients), "-c", str(args.ctx * clients),
            "-t", threads, "-tb", threads, "-b", str(args.batch),
            "--host", "127.0.0.1", "--port", str(ports["llama-server"]),
        ],
        "llama_cpp.server": [
            sys.executable, "-m", "llama_cpp.server", "--model", str(model),
            "--n_ctx", str(args.ctx), "--n_batch", str(args.batch), "--n_threads", threads,
            "--n_threads_batch", threads, "--host", "127.0.0.1",
            "--port", str(ports["llama_cpp.server"]), "--interrupt_requests", "false",
        ],
    }  # fmt: skip


READY: dict[str, Ready] = {
    "llama-server": ("/health", lambda r: r.is_success),
    "llama_cpp.server": ("/v1/models", lambda r: r.is_success),
}


def openai(
    name: str,
    port: int,
    lines: Lines,
    common: dict[str, Any],
    extra: Callable[[bool], dict[str, Any]],
) -> Server:
    """A server of the OpenAI completions API, streamed."""
    url = f"http://127.0.0.1:{port}/v1/completions"

    def stream(prompt: str, ignore_eos: bool) -> Timed:
        body = {"model": "m", "prompt": prompt, "stream": True, **common, **extra(ignore_eos)}
        return sse_stream(lines, url, body, lambda e: e["choices"][0]["text"])

    return Server(name, stream)


class Direct:
    """llama-cpp-python in this process: the model loaded once, one request at a time."""

    def __init__(self, model: Path, args: argparse.Namespace, common: dict[str, Any]) -> None:
        self.common = common
        self.llama = Llama(str(model), n_ctx=args.ctx, n_batch=args.batch,
                           n_threads=args.threads, n_threads_batch=args.threads,
                           flash_attn=True, verbose=False)  # fmt: skip
        import llama_cpp

        vocab = self.llama._model.vocab
        self.ends = [
            t for t in range(self.llama.n_vocab()) if llama_cpp.llama_vocab_is_eog(vocab, t)
        ]
        # OpenAI-style logit_bias for llama_cpp.server
        self.no_end = {str(t): -100.0 for t in self.ends}

    def stream(self, prompt: str, ignore_eos: bool) -> Timed:
        timer = StreamTimer()
        bias = {t: float("-inf") for t in self.ends} if ignore_eos else None
        create = self.llama.create_completion
        chunks = create(prompt, stream=True, logit_bias=bias, **self.common)  # type: ignore[arg-type]
        for chunk in chunks:
            if chunk["choices"][0]["text"]:  # type: ignore[index]
                timer.token()
        return timer, True
