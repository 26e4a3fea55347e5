"""Hosts on one machine: network namespaces on a bridge, and the links between them cut at will.

`Network` builds, as root:

- a bridge `ishan-clbr` holding 10.231.7.1/24 (the test process reaches every host through
  it: to check what a run left, never as a party to a partition);
- a host per `add_host(name)`: namespace `ishan-cl-NAME`, a veth pair (`ishan-cl-NAME` on the
  bridge, `eth0` inside) and the next address of 10.231.7.0/24, with loopback up;
- in each namespace an nftables table `inet ishan` whose input chain drops packets from the
  addresses in its set `cut`.

`cut(a, b)` adds each host's address to the other's set: both directions go silent (packets
leave and are dropped on arrival, as on a real partition: no error, no reset, TCP retransmits).
`isolate(a)` cuts `a` from every other host; `heal` takes the addresses out of the sets again.
`popen(host, argv)` starts a process inside a host (`ip netns exec`). `close()` stops every
process it started and deletes every namespace, veth and the bridge; `sweep()` removes what a
killed test run left behind (anything named `ishan-cl*`); a lock file makes a second
`Network` on the machine (another test run) wait until the first is closed. Traffic goes to
the addresses of 10.231.7.0/24 that these namespaces hold, and nowhere else.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tests.harness.processes import stop_process

PREFIX = "ishan-cl"
LOCK = Path("/run/lock/ishan-cluster.lock")  # one network at a time on a machine
BRIDGE = f"{PREFIX}br"
SUBNET = "10.231.7"
GATEWAY = f"{SUBNET}.1"
NFT_TABLE = """table inet ishan {
  set cut {
    type ipv4_addr
  }
  chain input {
    type filter hook input priority 0; policy accept;
    ip saddr @cut drop
  }
}
"""
HOW_TO_RUN = (
    "the cluster tests build network namespaces and need root with `ip` and `nft` "
    "(iproute2, nftables): run them as root, e.g. `sudo scripts/test tests/cluster`"
)


class NetworkError(RuntimeError):
    """An `ip` or `nft` command failed."""


def missing_requirement() -> str | None:
    """Why the cluster tests cannot run here (one line), or None."""
    if os.geteuid() != 0:
        return HOW_TO_RUN
    for tool in ("ip", "nft"):
        if shutil.which(tool) is None:
            return f"`{tool}` is not installed: {HOW_TO_RUN}"
    return None


def _sh(*argv: str, stdin: str | None = None, check: bool = True) -> str:
    done = subprocess.run(argv, input=stdin, capture_output=True, text=True, check=False)
    if check and done.returncode != 0:
        raise NetworkError(f"{' '.join(argv)}: {done.stderr.strip()}")
    return done.stdout


def sweep() -> None:
    """Remove the namespaces and links a killed run of these tests left (named ishan-cl*)."""
    for line in _sh("ip", "netns", "list").splitlines():
        name = line.split()[0] if line.strip() else ""
        if name.startswith(PREFIX):
            for pid in _sh("ip", "netns", "pids", name, check=False).split():
                with contextlib.suppress(ProcessLookupError, ValueError):
                    os.kill(int(pid), 9)
            _sh("ip", "netns", "del", name, check=False)
    for line in _sh("ip", "-o", "link", "show").splitlines():
        name = line.split(":")[1].strip().split("@")[0]
        if name.startswith(PREFIX):
            _sh("ip", "link", "del", name, check=False)


@dataclass
class Host:
    name: str
    address: str
    netns: str
    processes: list[subprocess.Popen[Any]] = field(default_factory=list)

    def __str__(self) -> str:
        return f"{self.name} ({self.address})"


class Network:
    """Hosts on one bridge; see the module's docstring."""

    def __init__(self) -> None:
        self.hosts: dict[str, Host] = {}
        self.cuts: set[frozenset[str]] = set()
        self.faults = 0  # cuts and isolations injected
        LOCK.parent.mkdir(parents=True, exist_ok=True)
        self._lock = LOCK.open("w")
        fcntl.flock(self._lock, fcntl.LOCK_EX)  # another run's network: wait for its end
        try:
            sweep()  # so what is left is a killed run's
            _sh("ip", "link", "add", BRIDGE, "type", "bridge")
            _sh("ip", "addr", "add", f"{GATEWAY}/24", "dev", BRIDGE)
            _sh("ip", "link", "set", BRIDGE, "up")
        except BaseException:
            self.close()
            raise

    def add_host(self, name: str) -> Host:
        assert name not in self.hosts and len(PREFIX) + 1 + len(name) <= 15, name
        address = f"{SUBNET}.{len(self.hosts) + 2}"
        netns = f"{PREFIX}-{name}"
        host = Host(name, address, netns)
        self.hosts[name] = host  # registered first: close() removes it even if a step fails
        _sh("ip", "netns", "add", netns)
        _sh("ip", "link", "add", netns, "type", "veth", "peer", "name", "eth0", "netns", netns)
        _sh("ip", "link", "set", netns, "master", BRIDGE, "up")
        _sh("ip", "-n", netns, "addr", "add", f"{address}/24", "dev", "eth0")
        _sh("ip", "-n", netns, "link", "set", "eth0", "up")
        _sh("ip", "-n", netns, "link", "set", "lo", "up")
        _sh("ip", "netns", "exec", netns, "nft", "-f", "-", stdin=NFT_TABLE)
        return host

    # -- processes --------------------------------------------------------------------------

    def popen(
        self,
        host: Host,
        argv: list[str],
        *,
        log: Path | None = None,
        env: dict[str, str] | None = None,
    ) -> subprocess.Popen[str]:
        """Start `argv` inside `host` (with `env`): stdout and stderr are pipes, or both go
        to `log`."""
        command = ["ip", "netns", "exec", host.netns, *argv]
        if log is None:
            process = subprocess.Popen(
                command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env
            )
        else:
            with log.open("a") as out:
                process = subprocess.Popen(
                    command, stdout=out, stderr=subprocess.STDOUT, text=True, env=env
                )
        host.processes.append(process)
        return process

    # -- faults -----------------------------------------------------------------------------

    def _set(self, host: Host, verb: str, peer: Host) -> None:
        _sh(
            "ip", "netns", "exec", host.netns,
            "nft", verb, "element", "inet", "ishan", "cut", f"{{ {peer.address} }}",
        )  # fmt: skip

    def cut(self, a: Host, b: Host) -> None:
        """Both directions between `a` and `b` go silent."""
        pair = frozenset((a.name, b.name))
        if pair in self.cuts:
            return
        self._set(a, "add", b)
        self._set(b, "add", a)
        self.cuts.add(pair)
        self.faults += 1

    def heal(self, a: Host, b: Host) -> None:
        pair = frozenset((a.name, b.name))
        if pair not in self.cuts:
            return
        self._set(a, "delete", b)
        self._set(b, "delete", a)
        self.cuts.discard(pair)

    def isolate(self, host: Host) -> None:
        """Cut `host` from every other host (one fault)."""
        faults = self.faults
        for other in self.hosts.values():
            if other is not host:
                self.cut(host, other)
        self.faults = faults + 1

    def heal_all(self) -> None:
        for pair in list(self.cuts):
            a, b = (self.hosts[name] for name in pair)
            self.heal(a, b)

    def reachable(self, source: Host, target: Host, port: int, timeout: float = 1.0) -> bool:
        """Whether a TCP connection from `source` to `target:port` is accepted."""
        code = (
            "import socket,sys\n"
            "try:\n"
            f"    socket.create_connection(('{target.address}', {port}), timeout={timeout})\n"
            "except OSError:\n"
            "    sys.exit(1)\n"
        )
        done = subprocess.run(
            ["ip", "netns", "exec", source.netns, sys.executable, "-c", code],
            capture_output=True,
            check=False,
        )
        return done.returncode == 0

    # -- the end ----------------------------------------------------------------------------

    def leftovers(self) -> list[str]:
        """Namespaces and links named ishan-cl* that exist now."""
        names = [line.split()[0] for line in _sh("ip", "netns", "list").splitlines() if line]
        names += [
            line.split(":")[1].strip().split("@")[0]
            for line in _sh("ip", "-o", "link", "show").splitlines()
        ]
        return [name for name in names if name.startswith(PREFIX)]

    def close(self) -> None:
        """Stop every process, then delete every namespace, veth and the bridge."""
        for host in self.hosts.values():
            for process in host.processes:
                stop_process(process, timeout=5)
        for host in self.hosts.values():
            _sh("ip", "netns", "del", host.netns, check=False)
            _sh("ip", "link", "del", host.netns, check=False)
        _sh("ip", "link", "del", BRIDGE, check=False)
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline and self.leftovers():
            time.sleep(0.05)
        self._lock.close()  # releases the lock
