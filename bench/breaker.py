"""Per-call overhead of a circuit breaker on a trivial successful call, closed state.

Overhead = time of a guarded call minus a bare `f(x)`, measured in the same run for
`ishan_tools.breaker`, `pybreaker` and `circuitbreaker`, both through `call(f, x)` and
through the decorator. Prints the median over several rounds in ns/call, and ratios.
`ishan_tools.breaker` is measured twice: as configured above, and counting slow calls
(`slow_call_duration=10, slow_call_rate_threshold=0.5`: every call is timed with the
breaker's clock and enters the slow-call window); the target holds for both rows.

`circuitbreaker.CircuitBreaker.call` does not check the state (it runs the function even
while the circuit is open; only its decorator guards), so it is printed for reference but
left out of the target: its guarded path is the decorator.

    python -m bench.breaker [--rounds 15] [--number 200000]
"""

from __future__ import annotations

import argparse
import statistics
import timeit
from collections.abc import Callable

import circuitbreaker
import pybreaker

from ishan_tools.breaker import CircuitBreaker, circuit_breaker

UNGUARDED = {("circuitbreaker", "call")}
OURS = ("ishan_tools.breaker", "ishan (slow calls on)")
SLOW = {"slow_call_duration": 10.0, "slow_call_rate_threshold": 0.5}


def f(x: int) -> int:
    return x


def candidates() -> dict[str, dict[str, Callable[[], object]]]:
    ours = CircuitBreaker(failure_threshold=5, recovery_timeout=60)
    ours_decorated = circuit_breaker(failure_threshold=5, recovery_timeout=60)(f)
    slow = CircuitBreaker(failure_threshold=5, recovery_timeout=60, **SLOW)
    slow_decorated = circuit_breaker(failure_threshold=5, recovery_timeout=60, **SLOW)(f)
    py = pybreaker.CircuitBreaker(fail_max=5, reset_timeout=60)
    py_decorated = pybreaker.CircuitBreaker(fail_max=5, reset_timeout=60)(f)
    cb = circuitbreaker.CircuitBreaker(failure_threshold=5, recovery_timeout=60)
    cb_decorated = circuitbreaker.circuit(failure_threshold=5, recovery_timeout=60)(f)
    return {
        "ishan_tools.breaker": {
            "call": lambda: ours.call(f, 1),
            "decorator": lambda: ours_decorated(1),
        },
        "ishan (slow calls on)": {
            "call": lambda: slow.call(f, 1),
            "decorator": lambda: slow_decorated(1),
        },
        "pybreaker": {"call": lambda: py.call(f, 1), "decorator": lambda: py_decorated(1)},
        "circuitbreaker": {
            "call": lambda: cb.call(f, 1),
            "decorator": lambda: cb_decorated(1),
        },
    }


def per_call_ns(stmt: Callable[[], object], number: int) -> float:
    return timeit.timeit(stmt, number=number) / number * 1e9


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--number", type=int, default=200_000)
    args = parser.parse_args()

    def bare() -> object:
        return f(1)

    table = candidates()
    samples: dict[tuple[str, str], list[float]] = {
        (lib, mode): [] for lib, modes in table.items() for mode in modes
    }
    for _ in range(args.rounds):  # interleave everything so noise hits all alike
        for (lib, mode), out in samples.items():
            baseline = per_call_ns(bare, args.number)
            out.append(per_call_ns(table[lib][mode], args.number) - baseline)

    median = {key: statistics.median(values) for key, values in samples.items()}
    print(
        f"circuit-breaker overhead per successful call, closed state "
        f"(median of {args.rounds} rounds x {args.number:,} calls; bare f(x) subtracted)"
    )
    ours_call = median[("ishan_tools.breaker", "call")]
    ours_deco = median[("ishan_tools.breaker", "decorator")]
    print(
        f"{'library':<22}{'call(f, x) ns':>16}{'decorator ns':>16}"
        f"{'call ratio':>12}{'deco ratio':>12}"
    )
    for lib in table:
        call_ns, deco_ns = median[(lib, "call")], median[(lib, "decorator")]
        mark = "*" if (lib, "call") in UNGUARDED else " "
        print(
            f"{lib:<22}{call_ns:>15.0f}{mark}{deco_ns:>16.0f}"
            f"{call_ns / ours_call:>11.1f}x{deco_ns / ours_deco:>11.1f}x"
        )
    print("* runs the function even while the circuit is open: not a guarded path")
    guarded = [key for key in median if key[0] not in OURS and key not in UNGUARDED]
    fastest_peer = min(median[key] for key in guarded)
    worst_ours = max(median[key] for key in median if key[0] in OURS)
    print(
        f"\ntarget: ishan overhead <= 400 ns and >= 2x lower than the fastest guarded peer: "
        f"worst ishan {worst_ours:.0f} ns, fastest peer {fastest_peer:.0f} ns, "
        f"ratio {fastest_peer / worst_ours:.1f}x -> "
        f"{'MET' if worst_ours <= 400 and fastest_peer / worst_ours >= 2 else 'NOT MET'}"
    )


if __name__ == "__main__":
    main()
