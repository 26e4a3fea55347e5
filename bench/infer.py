"""Time to first token and tokens/s: one client, then 4 concurrent clients in 3 workloads.

Servers, all with the same model, threads and greedy sampling:

  llama-server        llama.cpp's own C++ server, built once from the llama.cpp that the
                      installed llama-cpp-python vendors (`--build-llama-server`), run as
                      `llama-server -np 4 -c 8192 -t T -tb T` (its defaults otherwise:
                      prompt cache on);
  ishan               `ishan infer serve` with one worker (`--slots 4`);
  ishan worker only   (single client) that service's worker asked straight, without the
                      coordinator between: the decode loop alone, and what the hop costs;
  llama_cpp.server    llama-cpp-python's server (`--interrupt_requests false`: one
                      request at a time, none cut off);
  direct              llama-cpp-python called in this process, one request at a time.

The prompt is read verbatim everywhere (`"raw": true` on the coordinator API, whose
default is the chat template). Single client: 128 tokens, prompts new every round.
Concurrent: `--clients` (4) clients start together, 128 tokens each with `ignore_eos`
(llama-cpp-python: a -inf logit bias on the end-of-generation tokens) so every stream is
exactly 128 tokens, in three workloads:

  1. different short prompts;
  2. a shared ~240-token system prefix, warm (each server saw it before), plus a short
     question new every round;
  3. a fresh shared prefix (new every round) arriving at all clients at once.

The clients run in this process and read the streams through a plain socket (`--client
socket`, the default), so that what they spend per token, which on 2 cores comes out of
the server's decode threads, stays small; `--client httpx` reads them through one shared
httpx client instead (on this machine the rates were within the noise either way).

Within each round the servers take turns (so machine drift hits them alike); per-round
ratios to llama-server (single client: to direct), then their median. Aggregate tok/s is
all tokens over the round's wall time; TTFT p50 and max are over the clients of a round,
median over rounds.

    python bench/infer.py [--rounds 7] [--concurrent-rounds 3] [--threads 2] [--model PATH]
    python bench/infer.py --build-llama-server      # once: about 10-20 minutes on 2 cores
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tarfile
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack, contextmanager
from importlib.metadata import version
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
from llama_cpp import Llama

from ishan_tools.infer.config import default_model_path
from ishan_tools.infer.timing import StreamTimer

PROMPT = "Story {n}. Once upon a time, in a small village by the sea, there lived"
SYSTEM = (
    "You are Marlow, the assistant of the Harbour Lights bookshop in Portsea. The shop opens "
    "from nine in the morning to six in the evening on weekdays, from ten to five on "
    "Saturdays, and stays closed on Sundays and bank holidays. It stocks new and second-hand "
    "books: fiction, poetry, local history, maritime history, maps and charts, cookery, "
    "gardening and a large children's corner. Orders for books not on the shelves take three "
    "to five working days and can be collected in the shop or posted for a small fee. The "
    "reading club meets on the first Thursday of every month at seven; this season it reads "
    "novels about the sea. Author readings are announced in the window and in the monthly "
    "newsletter. Gift cards come in any amount from five pounds. Answer customers briefly "
    "and kindly, in plain English, and never invent a title, a price or an event: when you "
    "do not know, say so and suggest calling the shop. Keep answers short. Never promise "
    "delivery dates for special orders. If a customer asks about something the shop does "
    "not do, point them to the library on the high street or the tourist office by the pier.\n"
)
QUESTIONS = ("When do you open?", "Do you sell maps?", "Any readings soon?", "Gift cards?")
CACHE = Path.home() / ".cache" / "ishan-bench"
Timed = tuple[StreamTimer, bool]  # a stream's timer, and whether it ended properly


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


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@contextmanager
def process(
    argv: list[str], ready_url: str, ready: Callable[[httpx.Response], bool]
) -> Iterator[None]:
    env = {k: v for k, v in os.environ.items() if k not in ("HOST", "PORT", "MODEL_PATH")}
    proc = subprocess.Popen(argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 180
        while True:
            if proc.poll() is not None:
                raise SystemExit(f"{argv[:4]} exited with {proc.returncode}")
            try:
                if ready(httpx.get(ready_url, timeout=2)):
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise SystemExit(f"{argv[:4]} did not start")
            time.sleep(0.2)
        yield
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


Lines = Callable[[str, dict[str, Any]], Iterator[str]]  # POST JSON, read the body's lines


def socket_lines(url: str, body: dict[str, Any]) -> Iterator[str]:
    """POST `body` as JSON and yield the response body's lines as they arrive.

    A plain socket, HTTP/1.1 chunked or close-delimited, so that the client costs the
    machine as little CPU as it can: it shares the cores with the server it measures.
    """
    parts = urlsplit(url)
    assert parts.hostname is not None and parts.port is not None
    payload = json.dumps(body).encode()
    with socket.create_connection((parts.hostname, parts.port), timeout=600) as sock:
        head = (
            f"POST {parts.path} HTTP/1.1\r\nhost: {parts.netloc}\r\nconnection: close\r\n"
            f"content-type: application/json\r\ncontent-length: {len(payload)}\r\n\r\n"
        )
        sock.sendall(head.encode() + payload)
        reader = sock.makefile("rb")
        status = reader.readline().split(b" ", 2)
        headers: dict[bytes, bytes] = {}
        while (line := reader.readline()) not in (b"\r\n", b"\n", b""):
            name, _, value = line.partition(b":")
            headers[name.strip().lower()] = value.strip().lower()
        if len(status) < 2 or status[1] != b"200":
            raise OSError(f"{url}: HTTP {b' '.join(status[1:]).decode(errors='replace').strip()}")
        chunked = b"chunked" in headers.get(b"transfer-encoding", b"")
        rest = b""
        while True:
            if chunked:
                size = int(reader.readline().split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    break
                data = reader.read(size)
                reader.readline()  # the CRLF after each chunk
            else:
                data = reader.read1(65536)
                if not data:
                    break
            *lines, rest = (rest + data).split(b"\n")
            for one in lines:
                yield one.rstrip(b"\r").decode()
        if rest:
            yield rest.rstrip(b"\r").decode()


@functools.cache
def shared_httpx() -> httpx.Client:
    """For `--client httpx`: one pool for every request, as an application would have."""
    return httpx.Client(timeout=600)


def httpx_lines(url: str, body: dict[str, Any]) -> Iterator[str]:
    """The same through httpx (`--client httpx`)."""
    with shared_httpx().stream("POST", url, json=body) as response:
        response.raise_for_status()
        yield from response.iter_lines()


CLIENTS: dict[str, Lines] = {"socket": socket_lines, "httpx": httpx_lines}


def sse_stream(
    lines: Lines, url: str, body: dict[str, Any], pick: Callable[[dict[str, Any]], str | None]
) -> Timed:
    """One streamed request: its timer, and whether it ended with its last event."""
    timer = StreamTimer()
    ended = False
    try:
        for line in lines(url, body):
            if line == "data: [DONE]":
                ended = True
            if not line.startswith("data: ") or line == "data: [DONE]":
                continue
            event = json.loads(line[6:])
            if event.get("finished") is True and "error" not in event:
                ended = True
            if pick(event):
                timer.token()
    except (OSError, httpx.HTTPError):
        ended = False
    return timer, ended


class Server:
    """One way to generate: `stream(prompt, ignore_eos)` -> (timer, ended)."""

    def __init__(self, name: str, stream: Callable[[str, bool], Timed]) -> None:
        self.name = name
        self.stream = stream
        self.lock: threading.Lock | None = None  # serves one request at a time

    def one(self, prompt: str, ignore_eos: bool = False) -> Timed:
        if self.lock is None:
            return self.stream(prompt, ignore_eos)
        timer = StreamTimer()  # the wait for the lock counts in the time to first token
        with self.lock:
            inner, ended = self.stream(prompt, ignore_eos)
        inner.started = timer.started
        return inner, ended


def concurrent_round(server: Server, prompts: list[str]) -> list[Timed]:
    """One client per prompt, all started together, each on its own connection."""
    start = threading.Barrier(len(prompts))

    def one(prompt: str) -> Timed:
        start.wait()
        return server.one(prompt, True)

    with ThreadPoolExecutor(len(prompts)) as pool:
        return list(pool.map(one, prompts))


def aggregate(timed: list[Timed]) -> float:
    wall = max(t.last_at or 0 for t, _ in timed) - min(t.started for t, _ in timed)
    return sum(t.tokens for t, _ in timed) / wall


def ttfts(timed: list[Timed]) -> list[float]:
    return [t.ttft_s or float("nan") for t, _ in timed]


def workload_prompts(workload: int, round_: int, clients: int, server: str) -> list[str]:
    if workload == 1:
        return [PROMPT.format(n=1000 + 10 * round_ + i) for i in range(clients)]
    questions = [f"Customer {round_}-{i}: {QUESTIONS[i % len(QUESTIONS)]}" for i in range(clients)]
    if workload == 2:
        return [f"{SYSTEM}{q}\nMarlow:" for q in questions]
    fresh = f"Conversation {round_} on {server}, kept apart from the others. "
    return [f"{fresh}{SYSTEM}{q}\nMarlow:" for q in questions]


WORKLOADS = {
    1: "4 different short prompts",
    2: "shared ~240-token system prefix, warm",
    3: "fresh shared prefix, 4 clients at once",
}


def report_concurrent(results: dict[int, dict[str, list[list[Timed]]]], n: int) -> None:
    clients = len(next(iter(next(iter(results.values())).values()))[0])
    print(f"\n{clients} concurrent clients x {n} tokens, greedy, ignore_eos; medians over rounds")
    head = f"{'server':18} {'aggregate tok/s':>15} {'vs llama-server (per round)':>34}"
    print(f"{'workload':40} {head} {'TTFT p50 s':>10} {'TTFT max s':>10} {'tokens':>7} {'cut':>4}")
    for workload, by_server in results.items():
        base = [aggregate(r) for r in by_server["llama-server"]]
        for name, rounds in by_server.items():
            rates = [aggregate(r) for r in rounds]
            ratios = [rate / b for rate, b in zip(rates, base, strict=True)]
            per_round = ", ".join(f"{r:.2f}" for r in ratios)
            vs = f"{statistics.median(ratios):.2f}x ({per_round})"
            p50 = statistics.median(statistics.median(ttfts(r)) for r in rounds)
            worst = statistics.median(max(ttfts(r)) for r in rounds)
            tokens = statistics.median(sum(t.tokens for t, _ in r) for r in rounds)
            cut = sum(1 for r in rounds for _, ok in r if not ok)
            label = WORKLOADS[workload] if name == "llama-server" else ""
            print(
                f"{label:40} {name:18} {statistics.median(rates):>15.1f} {vs:>34} "
                f"{p50:>10.2f} {worst:>10.2f} {tokens:>7.0f} {cut:>4}"
            )


def report_single(samples: dict[str, list[StreamTimer]], args: argparse.Namespace) -> None:
    print(
        f"\none client, {args.tokens} tokens, ctx {args.ctx}, batch {args.batch}, "
        f"{args.threads} threads, greedy; median of {args.rounds} rounds"
    )
    direct = samples["direct"] if "direct" in samples else samples["llama-server"]
    base_ttft = statistics.median(t.ttft_s or 0 for t in direct)
    base_rates = [t.tokens_per_s or 0 for t in direct]
    head = f"{'':18} {'tokens':>6} {'TTFT ms':>8} {'Δ TTFT ms':>10} {'tok/s':>7}"
    print(f"{head} {'vs direct (per round)':>24}")
    for name, timers in samples.items():
        ttft = statistics.median(t.ttft_s or 0 for t in timers)
        rates = [t.tokens_per_s or 0 for t in timers]
        ratios = [rate / base for rate, base in zip(rates, base_rates, strict=True)]
        tokens = statistics.median(t.tokens for t in timers)
        per_round = " ".join(f"{r:.2f}" for r in ratios)
        print(
            f"{name:18} {tokens:>6.0f} {ttft * 1000:>8.1f} {(ttft - base_ttft) * 1000:>+10.1f} "
            f"{statistics.median(rates):>7.1f} {statistics.median(ratios):>7.1%} ({per_round})"
        )
    print("target for ishan: tok/s at least 95% of direct (the median of the per-round ratios)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--concurrent-rounds", type=int, default=3)
    parser.add_argument("--tokens", type=int, default=128)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--ctx", type=int, default=2048, help="per session (llama-server: x4)")
    parser.add_argument("--batch", type=int, default=512)
    parser.add_argument("--model", type=Path, default=None)
    parser.add_argument("--clients", type=int, default=4)
    parser.add_argument(
        "--servers",
        default="llama-server,ishan,ishan worker only,llama_cpp.server,direct",
        help="comma-separated rows (llama-server is always run: the ratios are to it; "
        "'ishan worker only' asks ishan's worker straight, single client only)",
    )
    parser.add_argument(
        "--concurrent-servers",
        default="llama-server,ishan,llama_cpp.server,direct",
        help="comma-separated rows of the concurrent workloads (the one-at-a-time servers "
        "take 4x as long)",
    )
    parser.add_argument(
        "--ishan-variant",
        action="append",
        default=[],
        metavar="ARGS",
        help="one more ishan row, served with these extra options (an A/B run), repeatable",
    )
    parser.add_argument(
        "--client",
        choices=sorted(CLIENTS),
        default="socket",
        help="how this process reads the streams (socket: a plain socket per request, the "
        "least CPU; httpx: one shared httpx client, as an application would)",
    )
    parser.add_argument("--build-llama-server", action="store_true")
    args = parser.parse_args()
    if args.build_llama_server:
        print(f"llama-server: {build_llama_server()}")
        return
    binary = llama_server_path()
    if not binary.exists():
        raise SystemExit(
            f"llama-server is not built: {binary} is missing. Build it once (10-20 minutes on "
            "2 cores) with\n  python bench/infer.py --build-llama-server\nwhich runs `pip "
            "download --no-binary :all: --no-deps llama-cpp-python==VERSION`, then CMake on "
            "its vendor/llama.cpp with -DLLAMA_BUILD_SERVER=ON -DLLAMA_CURL=OFF "
            "-DLLAMA_USE_PREBUILT_UI=OFF, target llama-server."
        )
    model = args.model or default_model_path()
    n, threads, clients = args.tokens, str(args.threads), args.clients
    common: dict[str, Any] = {"max_tokens": n, "temperature": 0.0}
    lines = CLIENTS[args.client]
    load_before = os.getloadavg()

    llama = Llama(str(model), n_ctx=args.ctx, n_batch=args.batch, n_threads=args.threads,
                  n_threads_batch=args.threads, flash_attn=True, verbose=False)  # fmt: skip
    import llama_cpp

    vocab = llama._model.vocab
    ends = [t for t in range(llama.n_vocab()) if llama_cpp.llama_vocab_is_eog(vocab, t)]
    no_end = {str(t): -100.0 for t in ends}  # OpenAI-style logit_bias for llama_cpp.server

    def direct(prompt: str, ignore_eos: bool) -> Timed:
        timer = StreamTimer()
        bias = {t: float("-inf") for t in ends} if ignore_eos else None
        for chunk in llama.create_completion(prompt, stream=True, logit_bias=bias, **common):  # type: ignore[arg-type]
            if chunk["choices"][0]["text"]:  # type: ignore[index]
                timer.token()
        return timer, True

    variants = {f"ishan {extra}": extra.split() for extra in args.ishan_variant}
    names = ("llama-server", "ishan", "llama_cpp.server", *variants)
    ports = {name: free_port() for name in names}
    argv = {
        "llama-server": [
            str(binary), "-m", str(model), "-np", str(clients), "-c", str(args.ctx * clients),
            "-t", threads, "-tb", threads, "-b", str(args.batch),
            "--host", "127.0.0.1", "--port", str(ports["llama-server"]),
        ],
        "ishan": [
            sys.executable, "-m", "ishan_tools", "infer", "serve", "--model", str(model),
            "--ctx", str(args.ctx), "--batch", str(args.batch), "--workers", "1",
            "--threads", threads, "--port", str(ports["ishan"]), "--worker-port", "0",
            "--heartbeat-interval", "1", "--slots", str(clients),
        ],
        "llama_cpp.server": [
            sys.executable, "-m", "llama_cpp.server", "--model", str(model),
            "--n_ctx", str(args.ctx), "--n_batch", str(args.batch), "--n_threads", threads,
            "--n_threads_batch", threads, "--host", "127.0.0.1",
            "--port", str(ports["llama_cpp.server"]), "--interrupt_requests", "false",
        ],
    }  # fmt: skip
    for name, extra in variants.items():
        argv[name] = [*argv["ishan"], *extra]
        argv[name][argv[name].index("--port") + 1] = str(ports[name])
    ready = {
        "llama-server": ("/health", lambda r: r.is_success),
        "ishan": (
            "/coordinator/health/workers",
            lambda r: any(w["healthy"] for w in r.json()),
        ),
        "llama_cpp.server": ("/v1/models", lambda r: r.is_success),
    }
    for name in variants:
        ready[name] = ready["ishan"]

    def openai(name: str, extra: Callable[[bool], dict[str, Any]]) -> Server:
        url = f"http://127.0.0.1:{ports[name]}/v1/completions"

        def stream(prompt: str, ignore_eos: bool) -> Timed:
            body = {"model": "m", "prompt": prompt, "stream": True, **common, **extra(ignore_eos)}
            return sse_stream(lines, url, body, lambda e: e["choices"][0]["text"])

        return Server(name, stream)

    def ishan(name: str) -> Server:
        url = f"http://127.0.0.1:{ports[name]}/coordinator/infer"

        def stream(prompt: str, ignore_eos: bool) -> Timed:
            body = {"model": "m", "prompt": prompt, "raw": True, "ignore_eos": ignore_eos}
            return sse_stream(lines, url, {**body, **common}, lambda e: e["token"])

        return Server(name, stream)

    def ishan_worker() -> Server:
        """The same service's worker, asked straight (no coordinator): what the hop costs.
        Its prompts get a prefix of their own, so that they miss the worker's prefix cache
        that the `ishan` row has just filled."""
        where: list[str] = []

        def stream(prompt: str, ignore_eos: bool) -> Timed:
            if not where:
                health = f"http://127.0.0.1:{ports['ishan']}/coordinator/health/workers"
                where.append(httpx.get(health).json()[0]["url"] + "/worker/generate")
            body = {"model": "m", "prompt": f"Alone. {prompt}", "raw": True, **common}
            timer, ended = StreamTimer(), False
            for line in lines(where[0], {**body, "ignore_eos": ignore_eos}):
                event = json.loads(line) if line else {}
                ended = ended or bool(event.get("done"))
                if event.get("token"):
                    timer.token()
            return timer, ended

        return Server("ishan worker only", stream)

    servers = [
        openai("llama-server", lambda ignore: {"ignore_eos": ignore}),
        ishan("ishan"),
        ishan_worker(),
        openai("llama_cpp.server", lambda ignore: {"logit_bias": no_end} if ignore else {}),
        Server("direct", direct),
    ]
    for server in servers:
        if server.name in ("llama_cpp.server", "direct"):  # one at a time: clients queue
            server.lock = threading.Lock()
    servers[3:3] = [ishan(name) for name in variants]
    wanted = {"llama-server", *args.servers.split(","), *variants}
    servers = [s for s in servers if s.name in wanted]
    argv = {name: command for name, command in argv.items() if name in wanted}
    print(f"llama-server: {' '.join(argv['llama-server'][1:])}")
    print(f"ishan: ishan infer serve {' '.join(argv['ishan'][5:])}")
    print("direct: Llama(n_ctx, n_batch, n_threads, n_threads_batch, flash_attn=True)")
    print(f"client: {args.client}, in this process")
    with ExitStack() as stack:
        for name, command in argv.items():
            path, check = ready[name]
            stack.enter_context(process(command, f"http://127.0.0.1:{ports[name]}{path}", check))
        for server in servers:  # warm-up: page in the weights; workload 2's prefix is seen
            server.one(PROMPT.format(n=-1))
            server.one(f"{SYSTEM}{QUESTIONS[0]}\nMarlow:")
        single: dict[str, list[StreamTimer]] = {s.name: [] for s in reversed(servers)}
        for round_ in range(args.rounds):
            for server in servers:
                single[server.name].append(server.one(PROMPT.format(n=round_))[0])
        chosen = [*args.concurrent_servers.split(","), *variants]
        together = [s for s in servers if s.name in chosen]
        results: dict[int, dict[str, list[list[Timed]]]] = {
            w: {s.name: [] for s in together} for w in WORKLOADS
        }
        for round_ in range(args.concurrent_rounds):
            for workload in WORKLOADS:
                for server in together:
                    prompts = workload_prompts(workload, round_, clients, server.name)
                    results[workload][server.name].append(concurrent_round(server, prompts))
    load_after = os.getloadavg()
    print(
        f"model {model.name}; machine: {os.cpu_count()} cores, load average (1, 5, 15 min) "
        f"{load_before[0]:.2f} {load_before[1]:.2f} {load_before[2]:.2f} before, "
        f"{load_after[0]:.2f} {load_after[1]:.2f} {load_after[2]:.2f} after"
    )
    report_single(single, args)
    if args.concurrent_rounds > 0:
        report_concurrent(results, n)


if __name__ == "__main__":
    main()
