"""Run the infer benchmark: `python -m bench.infer [options]` (see bench/infer/__init__.py)."""

from __future__ import annotations

import argparse
import os
import threading
from contextlib import ExitStack
from pathlib import Path
from typing import Any

from ishan_tools.infer.config import default_model_path
from tests.harness.ports import free_port

from . import __doc__ as DESCRIPTION
from . import baselines, ishan, report, workloads
from .clients import CLIENTS, Server, process


def options() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=DESCRIPTION)
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
        help="comma-separated rows (llama-server is always run, unless --without-llama-server: "
        "the ratios are to it; "
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
    parser.add_argument(
        "--without-llama-server",
        action="store_true",
        help="leave the llama-server row out (when it is not built): the concurrent ratios are "
        "then to the first row",
    )
    return parser.parse_args()


def main() -> None:
    args = options()
    if args.build_llama_server:
        print(f"llama-server: {baselines.build_llama_server()}")
        return
    binary = baselines.llama_server_path()
    if not binary.exists() and not args.without_llama_server:
        raise SystemExit(baselines.NOT_BUILT.format(binary=binary))
    model = args.model or default_model_path()
    n, clients = args.tokens, args.clients
    common: dict[str, Any] = {"max_tokens": n, "temperature": 0.0}
    lines = CLIENTS[args.client]
    load_before = os.getloadavg()
    direct = baselines.Direct(model, args, common)

    variants = {f"ishan {extra}": extra.split() for extra in args.ishan_variant}
    names = ("llama-server", "ishan", "llama_cpp.server", *variants)
    ports = {name: free_port() for name in names}
    baseline = baselines.commands(binary, model, args, ports)
    argv = {
        "llama-server": baseline["llama-server"],
        "ishan": ishan.command(model, args, ports["ishan"]),
        "llama_cpp.server": baseline["llama_cpp.server"],
    }
    for name, extra in variants.items():
        argv[name] = [*argv["ishan"], *extra]
        argv[name][argv[name].index("--port") + 1] = str(ports[name])
    ready = {**baselines.READY, "ishan": ishan.READY}
    for name in variants:
        ready[name] = ishan.READY

    no_end = direct.no_end
    servers = [
        baselines.openai("llama-server", ports["llama-server"], lines, common,
                         lambda ignore: {"ignore_eos": ignore}),
        ishan.coordinator("ishan", ports["ishan"], lines, common),
        ishan.worker_only(ports["ishan"], lines, common),
        baselines.openai("llama_cpp.server", ports["llama_cpp.server"], lines, common,
                         lambda ignore: {"logit_bias": no_end} if ignore else {}),
        Server("direct", direct.stream),
    ]  # fmt: skip
    for server in servers:
        if server.name in ("llama_cpp.server", "direct"):  # one at a time: clients queue
            server.lock = threading.Lock()
    servers[3:3] = [ishan.coordinator(name, ports[name], lines, common) for name in variants]
    wanted = {"llama-server", *args.servers.split(","), *variants}
    if args.without_llama_server:
        wanted.discard("llama-server")
    servers = [s for s in servers if s.name in wanted]
    argv = {name: command for name, command in argv.items() if name in wanted}
    if "llama-server" in argv:
        print(f"llama-server: {' '.join(argv['llama-server'][1:])}")
    print(f"ishan: ishan infer serve {' '.join(argv['ishan'][5:])}")
    print("direct: Llama(n_ctx, n_batch, n_threads, n_threads_batch, flash_attn=True)")
    print(f"client: {args.client}, in this process")
    with ExitStack() as stack:
        for name, command in argv.items():
            path, check = ready[name]
            stack.enter_context(process(command, f"http://127.0.0.1:{ports[name]}{path}", check))
        workloads.warm_up(servers)
        single = workloads.single_client(servers, args.rounds)
        chosen = [*args.concurrent_servers.split(","), *variants]
        together = [s for s in servers if s.name in chosen]
        results = workloads.concurrent_clients(together, args.concurrent_rounds, clients)
    report.report_machine(model, load_before)
    report.report_single(single, args)
    if args.concurrent_rounds > 0:
        report.report_concurrent(results, n)


if __name__ == "__main__":
    main()
