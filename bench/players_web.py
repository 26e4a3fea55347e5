"""Benchmark the scouting page: time from an input change to updated results, in a real browser.

Starts `ishan players serve --port 0`, opens its page in headless Chromium (the tests' harness,
tests/harness/browser.py) and times interactions inside the page, as a user makes them:
  slider     a rating slider moved (an `input` event, as while dragging)
  filter     a filter changed: age, foot, position code, league, top N, role rule, weight
  search     a name typed into the search box, until the suggestions are listed
  pick       a suggestion picked (Enter), until the table shows players like him
  radar      a result row clicked, until his radar and card are drawn
Each is timed from the event to the page's own "done" event (table, suggestions or radar
replaced in the DOM) and to the next frame after it. The baseline, measured in the same page
and run: the bare API round trip (fetch of the same request, parsed, nothing drawn).

Run: .venv/bin/python -m bench.players_web [--rounds 200]   (a minute or two)
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import subprocess
import sys
from pathlib import Path

from tests.harness.browser import Browser
from tests.harness.processes import start_server as start_players_server
from tests.harness.processes import stop_process

ISHAN = Path(sys.executable).with_name("ishan")
ATTRIBUTES = ("pace", "shooting", "passing", "dribbling", "defending", "physic")
NAMES = ("kante", "pedri", "muller", "salah", "de bruyne", "rodri", "kimmich", "alaba", "mbappe")

# Runs in the page: do one interaction, resolve with [ms to the done event, ms to next frame].
INTERACT = """
const [kind, arg, finish] = arguments;
const $ = (s) => document.querySelector(s);
const awaited = {search: "suggestions", radar: "detail"}[kind] || "results";
const start = performance.now();
const row = kind === "radar" && $("#results tbody tr:not([aria-selected=true])");
const listener = (event) => {
  if (row && event.detail.player !== Number(row.dataset.id)) return;  // an older radar
  document.removeEventListener(awaited, listener);
  const done = performance.now() - start;
  requestAnimationFrame(() => setTimeout(() => finish([done, performance.now() - start]), 0));
};
document.addEventListener(awaited, listener);
const fire = (element, type) => element.dispatchEvent(new Event(type, {bubbles: true}));
if (kind === "slider") { const s = $("#r-" + arg[0]); s.value = arg[1]; fire(s, "input"); }
else if (kind === "number") { const n = $("#" + arg[0]); n.value = arg[1]; fire(n, "input"); }
else if (kind === "select") { const s = $("#" + arg[0]); s.value = arg[1]; fire(s, "change"); }
else if (kind === "click") $(arg).click();
else if (kind === "league") {
  const input = $("#league-input"); input.value = arg; fire(input, "change");
}
else if (kind === "search") { const s = $("#search"); s.value = arg; fire(s, "input"); }
else if (kind === "pick") {
  $("#search").dispatchEvent(new KeyboardEvent("keydown", {key: "Enter", bubbles: true}));
}
else if (kind === "radar") row.click();
"""
# Remembers the last query the page sent, for the baseline.
RECORD = """
const send = window.fetch;
window.fetch = (url, options) => {
  if (String(url) === "players/similar") window.lastBody = JSON.parse(options.body);
  return send(url, options);
};
"""
# The baseline: the same request the page would send, fetched and parsed, nothing drawn.
ROUND_TRIP = """
const [body, finish] = arguments;
const start = performance.now();
fetch("players/similar", {method: "POST", headers: {"Content-Type": "application/json"},
                          body: JSON.stringify(body)})
  .then((r) => r.json()).then(() => finish([performance.now() - start, 0]));
"""


def start_server() -> tuple[subprocess.Popen[str], str]:
    return start_players_server([str(ISHAN), "players", "serve", "--port", "0"])


def filter_changes(rng: random.Random) -> list[tuple[str, object]]:
    """One round of filter changes that each leave some players to show."""
    return [
        ("number", ["min_age", rng.randint(17, 24)]),
        ("number", ["max_age", rng.randint(27, 34)]),
        ("select", ["foot", rng.choice(["left", "right", ""])]),
        ("click", f'#plays button[data-code="{rng.choice(["CM", "CAM", "CDM", "RM", "LM"])}"]'),
        ("select", ["top", rng.choice(["10", "20", "50"])]),
        ("select", ["role_from", rng.choice(["first", "majority"])]),
        ("number", [f"w-{rng.choice(ATTRIBUTES)}", rng.choice([0.5, 1, 2, 3])]),
        ("league", rng.choice(["Premier", "Liga", "Serie A", "Bundesliga", "Ligue 1"])),
    ]


def measure(rounds: int, seed: int) -> dict[str, list[tuple[float, float]]]:
    rng = random.Random(seed)
    process, url = start_server()
    samples: dict[str, list[tuple[float, float]]] = {}
    try:
        with Browser(width=1440, height=1000) as browser:
            browser.driver.set_script_timeout(30)

            def run(name: str, kind: str, arg: object) -> None:
                done, frame = browser.driver.execute_async_script(INTERACT, kind, arg)
                samples.setdefault(name, []).append((done, frame))

            for number in range(rounds):
                if number % 8 == 0:  # each stretch starts from a plain profile
                    browser.open(f"{url}/?position=midfielder&pace=75&passing=85&dribbling=80")
                    browser.wait_for(
                        lambda d: browser.find("#results").get_attribute("data-generation")
                    )
                    browser.js(RECORD)
                run("slider", "slider", [rng.choice(ATTRIBUTES), rng.randint(40, 95)])
                kind, arg = filter_changes(rng)[number % 8]
                run("filter", kind, arg)
                body = browser.js("return window.lastBody")
                run("radar", "radar", None)
                if number % 4 == 0:
                    run("search", "search", rng.choice(NAMES))
                    run("pick", "pick", None)
                    run("back to the profile", "click", "#like-clear")
                result = browser.driver.execute_async_script(ROUND_TRIP, body)
                samples.setdefault("API round trip (baseline)", []).append(tuple(result))
            errors = browser.console_errors()
            if errors:
                raise SystemExit(f"the page logged errors: {errors[:3]}")
    finally:
        stop_process(process)
    return samples


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(share * (len(ordered) - 1)))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=200, help="rounds of interactions")
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()
    load = os.getloadavg()[0]
    print(
        f"ishan players page benchmark: headless Chromium on localhost, {args.rounds} rounds "
        f"({os.cpu_count()} CPUs, load average {load:.2f} at start)",
        file=sys.stderr,
    )
    samples = measure(args.rounds, args.seed)
    baseline = statistics.median(done for done, _ in samples.pop("API round trip (baseline)"))
    print(
        "| interaction | n | p50 to results | p95 to results | p95 to next frame | max "
        "| p50 vs API round trip |"
    )
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: |")
    everything: list[float] = []
    for name in ("slider", "filter", "search", "pick", "radar"):
        done = [d for d, _ in samples[name]]
        frame = [f for _, f in samples[name]]
        everything += done
        print(
            f"| {name} | {len(done)} | {statistics.median(done):.1f} ms | "
            f"{percentile(done, 0.95):.1f} ms | {percentile(frame, 0.95):.1f} ms | "
            f"{max(done):.1f} ms | {statistics.median(done) / baseline:.1f}x |"
        )
    print(
        f"| all interactions | {len(everything)} | {statistics.median(everything):.1f} ms | "
        f"{percentile(everything, 0.95):.1f} ms | | {max(everything):.1f} ms | |"
    )
    print(f"| API round trip from the page (baseline, p50) | | {baseline:.1f} ms | | | | 1.0x |")


if __name__ == "__main__":
    main()
