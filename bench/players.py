"""Benchmark `ishan players` against the original project's approach (all-pairs similarity).

Measured in one run, each side in its own processes so peak memory is its own; the baseline
is the original project's approach:
  cold start   `ishan players <the original project's profile>` vs a baseline script (pandas +
               scikit-learn, all-pairs matrix), process start to printed result
  index build  load + encode (ours) vs load + encode + all-pairs cosine matrix (baseline)
  query        1,000 random profiles: p50/p99 in-process; plus `like` (player -> players)
  peak memory  maximum resident set of the process that builds and queries
  API          requests/s on the original project's endpoint, `wrk` on loopback (an asyncio
               httpx client when wrk is missing), ours vs a baseline FastAPI server

Run: .venv/bin/python -m bench.players [--quick]   (about three minutes; medians of repeats)
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

from tests.harness.ports import free_port
from tests.harness.processes import stop_process
from tests.harness.waiting import WaitTimeout, wait_until

ISHAN = Path(sys.executable).with_name("ishan")
# The original project's example profile: its API's request body, and `ishan players` options.
PROFILE_BODY = {
    "player_positions": "midfielder",
    "speed": 75,
    "physic": 70,
    "defense": 65,
    "dribbling": 80,
    "shooting": 72,
    "passing": 85,
}
PROFILE_ARGS = "--position midfielder --pace 75 --shooting 72 --passing 85 --dribbling 80"
PROFILE_ARGS += " --defending 65 --physic 70"

# The baseline: the original project's approach, written the way it describes it: pandas +
# scikit-learn and an all-pairs similarity matrix built at startup.
BASELINE_SETUP = """
import numpy as np, pandas as pd
from sklearn.metrics.pairwise import cosine_similarity
from sklearn.preprocessing import MinMaxScaler, OneHotEncoder
from ishan_tools.players.data import EMBEDDED_DATA
SIX = ["pace", "shooting", "passing", "dribbling", "defending", "physic"]
ROLES = {**dict.fromkeys(["ST", "CF", "LW", "RW"], "attacker"),
         **dict.fromkeys(["CAM", "CM", "CDM", "LM", "RM"], "midfielder"),
         **dict.fromkeys(["CB", "LB", "RB", "LWB", "RWB"], "defender")}
def build():
    df = pd.read_csv(EMBEDDED_DATA).dropna(subset=SIX)
    df["role"] = df["player_positions"].str.split(",").str[0].str.strip().map(ROLES)
    df = df.dropna(subset=["role"]).reset_index(drop=True)
    encoder = OneHotEncoder(sparse_output=False).fit(df[["role"]])
    scaler = MinMaxScaler().fit(df[SIX])
    X = np.hstack([encoder.transform(df[["role"]]), scaler.transform(df[SIX])])
    return df, encoder, scaler, X, cosine_similarity(X)
def query(state, role, ratings, top=3):
    df, encoder, scaler, X, _ = state
    q = np.hstack([encoder.transform(pd.DataFrame({"role": [role]})),
                   scaler.transform(pd.DataFrame([ratings])[SIX])])
    scores = cosine_similarity(q, X)[0]
    return df["short_name"].to_numpy()[np.argsort(-scores, kind="stable")[:top]].tolist()
def like(state, i, top=3):
    df, _, _, _, matrix = state
    order = np.argsort(-matrix[i], kind="stable")
    return df["short_name"].to_numpy()[[j for j in order[: top + 1] if j != i][:top]].tolist()
"""
BASELINE_CLI = (
    BASELINE_SETUP
    + """
state = build()
print(query(state, "midfielder", {"pace": 75, "shooting": 72, "passing": 85,
                                  "dribbling": 80, "defending": 65, "physic": 70}))
"""
)
BASELINE_SERVER = (
    BASELINE_SETUP
    + """
import sys, uvicorn
from fastapi import FastAPI
from pydantic import BaseModel
class PlayerProfile(BaseModel):
    player_positions: str
    speed: float
    physic: float
    defense: float
    dribbling: float
    shooting: float
    passing: float
state = build()
app = FastAPI()
@app.post("/find_similar_players/")
def find_similar_players(p: PlayerProfile):
    ratings = {"pace": p.speed, "shooting": p.shooting, "passing": p.passing,
               "dribbling": p.dribbling, "defending": p.defense, "physic": p.physic}
    return {"similar_players": query(state, p.player_positions, ratings)}
uvicorn.run(app, host="127.0.0.1", port=int(sys.argv[1]), log_level="warning")
"""
)


def timed_process(command: list[str]) -> tuple[float, float, str]:
    """Run a command; return (wall seconds, peak RSS in MB, stdout)."""
    start = time.perf_counter()
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    assert process.stdout is not None
    out = process.stdout.read().decode()
    _, status, usage = os.wait4(process.pid, 0)
    wall = time.perf_counter() - start
    process.returncode = os.waitstatus_to_exitcode(status)
    if process.returncode != 0:
        raise SystemExit(f"{command[:3]} exited {process.returncode}")
    return wall, usage.ru_maxrss / 1024, out


def random_profiles(count: int) -> list[tuple[str, dict[str, float]]]:
    import numpy as np

    rng = np.random.default_rng(7)
    six = ["pace", "shooting", "passing", "dribbling", "defending", "physic"]
    return [
        (
            str(rng.choice(["attacker", "midfielder", "defender"])),
            dict(zip(six, map(float, rng.integers(20, 99, 6)), strict=True)),
        )
        for _ in range(count)
    ]


def percentiles(seconds: list[float]) -> dict[str, float]:
    ordered = sorted(seconds)
    return {
        "p50_ms": statistics.median(ordered) * 1e3,
        "p99_ms": ordered[int(len(ordered) * 0.99) - 1] * 1e3,
    }


def worker(side: str, builds: int, queries: int) -> dict[str, Any]:
    """Build the index `builds` times, answer `queries` random profiles and likes."""
    import resource

    profiles = random_profiles(queries)
    build_times: list[float] = []
    if side == "ours":
        from ishan_tools.players import Index, Profile

        for _ in range(builds):
            start = time.perf_counter()
            index = Index.from_file()
            build_times.append(time.perf_counter() - start)

        def ask(role: str, ratings: dict[str, float]) -> object:
            return index.similar(Profile(role, ratings), top=3)

        def like(i: int) -> object:
            return index.like(int(index.rows[i]), top=3)

        size = len(index)
    else:
        namespace: dict[str, Any] = {}
        exec(BASELINE_SETUP, namespace)
        for _ in range(builds):
            namespace.pop("state", None)
            start = time.perf_counter()
            namespace["state"] = namespace["build"]()
            build_times.append(time.perf_counter() - start)
        state = namespace["state"]

        def ask(role: str, ratings: dict[str, float]) -> object:
            return namespace["query"](state, role, ratings)

        def like(i: int) -> object:
            return namespace["like"](state, i)

        size = len(state[0])
    query_times = []
    for role, ratings in profiles:
        start = time.perf_counter()
        ask(role, ratings)
        query_times.append(time.perf_counter() - start)
    like_times = []
    for i in range(0, size, max(1, size // queries))[:queries]:
        start = time.perf_counter()
        like(i)
        like_times.append(time.perf_counter() - start)
    return {
        "build_s": statistics.median(build_times),
        "query": percentiles(query_times),
        "like": percentiles(like_times),
        "peak_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }


def wait_until_up(url: str, process: subprocess.Popen[bytes], timeout: float = 120) -> None:
    def answers() -> bool:
        try:
            return httpx.post(url, json=PROFILE_BODY, timeout=5).status_code == 200
        except httpx.TransportError:
            return False

    try:
        wait_until(answers, timeout, what=url, interval=0.2, process=process)
    except WaitTimeout as error:
        raise SystemExit(str(error)) from None


def load_wrk(url: str, seconds: int) -> float:
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as script:
        body = json.dumps(PROFILE_BODY).replace('"', '\\"')
        script.write(
            f'wrk.method = "POST"\nwrk.body = "{body}"\n'
            'wrk.headers["Content-Type"] = "application/json"\n'
        )
    try:
        out = subprocess.run(
            ["wrk", "-t1", "-c32", f"-d{seconds}s", "-s", script.name, url],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
    finally:
        os.unlink(script.name)
    if "Non-2xx" in out:
        raise SystemExit(f"wrk saw errors:\n{out}")
    return float(next(line for line in out.splitlines() if "Requests/sec" in line).split()[1])


def load_httpx(url: str, seconds: int) -> float:
    async def run() -> float:
        done = 0
        deadline = time.perf_counter() + seconds
        async with httpx.AsyncClient() as client:

            async def one() -> None:
                nonlocal done
                while time.perf_counter() < deadline:
                    (await client.post(url, json=PROFILE_BODY)).raise_for_status()
                    done += 1

            start = time.perf_counter()
            await asyncio.gather(*(one() for _ in range(32)))
            return done / (time.perf_counter() - start)

    return asyncio.run(run())


def api_throughput(command: list[str], port: int, runs: int, seconds: int) -> float:
    url = f"http://127.0.0.1:{port}/find_similar_players/"
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_until_up(url, process)
        load = load_wrk if shutil.which("wrk") else load_httpx
        return statistics.median(load(url, seconds) for _ in range(runs))
    finally:
        stop_process(process)


def figure(value: float) -> str:
    return f"{value:,.0f}" if value >= 100 else f"{value:.2f}" if value >= 1 else f"{value:.3f}"


def row(name: str, ours: float, baseline: float, unit: str, better: str = "lower") -> str:
    ratio = baseline / ours if better == "lower" else ours / baseline
    return f"| {name} | {figure(ours)} {unit} | {figure(baseline)} {unit} | {ratio:,.1f}x |"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer repeats, shorter load")
    parser.add_argument("--worker", choices=["ours", "baseline"], help=argparse.SUPPRESS)
    args = parser.parse_args()
    repeats, seconds, queries = (3, 5, 1000) if args.quick else (5, 10, 1000)
    if args.worker:
        builds = repeats if args.worker == "ours" else 2
        print(json.dumps(worker(args.worker, builds, queries)))
        return

    env_note = f"{os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.2f} at start"
    print(f"ishan players benchmark ({env_note}); medians of repeats", file=sys.stderr)
    ours_cli = [
        timed_process([str(ISHAN), "players", *PROFILE_ARGS.split()]) for _ in range(repeats)
    ]
    baseline_cli = [timed_process([sys.executable, "-c", BASELINE_CLI]) for _ in range(3)]
    me = [sys.executable, "-m", "bench.players"] + (["--quick"] if args.quick else [])
    ours = json.loads(timed_process([*me, "--worker", "ours"])[2])
    baseline = json.loads(timed_process([*me, "--worker", "baseline"])[2])
    port = free_port()
    ours_api = api_throughput(
        [str(ISHAN), "players", "serve", "--port", str(port)], port, 3, seconds
    )
    port = free_port()
    baseline_api = api_throughput(
        [sys.executable, "-c", BASELINE_SERVER, str(port)], port, 3, seconds
    )
    print("| measure | ishan players | baseline approach (all-pairs) | ours better by |")
    print("| --- | ---: | ---: | ---: |")

    def cold(field: int) -> list[float]:  # medians of (wall s, peak MB)[field]: ours, baseline
        return [statistics.median(r[field] for r in runs) for runs in (ours_cli, baseline_cli)]

    print(row("cold CLI start (process start to table)", *cold(0), "s"))
    print(row("cold CLI peak memory", *cold(1), "MB"))
    print(row("index build", ours["build_s"], baseline["build_s"], "s"))
    for kind in ("query", "like"):
        for stat in ("p50_ms", "p99_ms"):
            what = "profiles" if kind == "query" else "players"
            label = f"{kind} latency {stat[:3]} ({queries:,} {what})"
            print(row(label, ours[kind][stat], baseline[kind][stat], "ms"))
    print(row("peak memory (build + queries)", ours["peak_mb"], baseline["peak_mb"], "MB"))
    tool = "wrk -t1 -c32" if shutil.which("wrk") else "httpx asyncio, 32 clients"
    label = f"API baseline endpoint ({tool}, {seconds} s)"
    print(row(label, ours_api, baseline_api, "req/s", "higher"))


if __name__ == "__main__":
    main()
