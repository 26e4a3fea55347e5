"""The test bed itself: hosts reach each other, a cut is silent both ways, heal restores it,
isolate cuts one host from all, and nothing named ishan-cl* outlives the network."""

from __future__ import annotations

import time
from pathlib import Path

from tests.cluster.conftest import SITE_PORT, start_site
from tests.cluster.net import Network


def test_cut_heal_and_isolate_between_hosts(net: Network, tmp_path: Path) -> None:
    a, b, c = (net.add_host(name) for name in ("a", "b", "c"))
    for host in (a, b, c):
        start_site(net, host, tmp_path, pages=1, delay=0)
    assert net.reachable(a, b, SITE_PORT) and net.reachable(b, a, SITE_PORT)
    net.cut(a, b)
    started = time.monotonic()
    assert not net.reachable(a, b, SITE_PORT) and not net.reachable(b, a, SITE_PORT)
    assert time.monotonic() - started >= 1.5, "a cut must be silent (a timeout), not refused"
    assert net.reachable(a, c, SITE_PORT) and net.reachable(c, b, SITE_PORT)
    net.heal(a, b)
    assert net.reachable(a, b, SITE_PORT) and net.reachable(b, a, SITE_PORT)
    net.isolate(c)
    assert not net.reachable(a, c, SITE_PORT) and not net.reachable(c, b, SITE_PORT)
    assert net.reachable(a, b, SITE_PORT)
    net.heal_all()
    assert net.reachable(c, a, SITE_PORT)
    assert net.faults == 2


def test_close_removes_every_namespace_link_and_process(tmp_path: Path) -> None:
    network = Network()
    try:
        host = network.add_host("x")
        site = start_site(network, host, tmp_path, pages=1, delay=0)
        assert site.startswith("http://10.231.7.")
        process = host.processes[0]
    finally:
        network.close()
    assert network.leftovers() == []
    assert process.poll() is not None
