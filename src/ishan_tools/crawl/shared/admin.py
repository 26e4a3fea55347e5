"""Looking after shared crawls: list them, read one's state, forget one (delete its keys).

Reads are plain (not atomic): `crawl_status` is a snapshot good for a person or a monitor.
"""

from __future__ import annotations

import json
from collections import Counter
from typing import Any

import redis

from ishan_tools.crawl.shared.keys import CrawlKeys, unreachable
from ishan_tools.errors import CrawlError
from ishan_tools.stores.client import REDIS_DOWN, sync_client

__all__ = ["crawl_status", "crawl_totals", "forget_crawl", "list_crawls"]

_HINT = "start Redis, or fix --frontier / ISHAN_CRAWL_FRONTIER"
_HOST_FIELDS = {"q": "queued", "f": "leased", "d": "done", "e": "failed", "k": "skipped"}
_DEFAULT_LEASE_S = 30.0


def list_crawls(url: str) -> list[str]:
    """The ids of the crawls stored at `url`."""
    try:
        client = sync_client(url)
        names = {CrawlKeys.crawl_of(key) for key in client.scan_iter("ishan:crawl:*:opts", 1000)}
    except REDIS_DOWN as exc:
        raise unreachable(url, exc, _HINT) from None
    return sorted(name for name in names if name)


def _pick(url: str, crawl_id: str | None, client: redis.Redis) -> CrawlKeys:
    if crawl_id is None:
        crawls = list_crawls(url)
        if len(crawls) != 1:
            known = ", ".join(crawls) if crawls else "none"
            raise CrawlError(f"pass --crawl-id: the crawls at {url} are: {known}")
        crawl_id = crawls[0]
    keys = CrawlKeys(crawl_id)
    if not client.exists(keys.opts):
        known = ", ".join(list_crawls(url)) or "none"
        raise CrawlError(f"there is no crawl {crawl_id} at {url} (crawls there: {known})")
    return keys


def crawl_status(url: str, crawl_id: str | None = None) -> dict[str, Any]:
    """The shared crawl's state: counts, per-host counts and breaker, workers, pages/s."""
    try:
        client = sync_client(url)
        keys = _pick(url, crawl_id, client)
        return _status(url, client, keys)
    except REDIS_DOWN as exc:
        raise unreachable(url, exc, _HINT) from None


def _status(url: str, client: redis.Redis, keys: CrawlKeys) -> dict[str, Any]:
    pipe = client.pipeline(transaction=False)
    pipe.get(keys.opts)
    pipe.hgetall(keys.meta)
    pipe.hgetall(keys.stats)
    pipe.smembers(keys.hosts)
    pipe.zrange(keys.workers, 0, -1, withscores=True)
    pipe.zcard(keys.lease)
    pipe.time()
    opts, meta, stats, hosts, beats, leased, (seconds, micros) = pipe.execute()
    now_ms = int(seconds) * 1000 + int(micros) // 1000
    options = json.loads(opts)
    hosts = sorted(hosts)
    pipe = client.pipeline(transaction=False)
    for host in hosts:
        pipe.hgetall(keys.host(host))
        pipe.hget(keys.breaker(host), "state")
    for worker, _ in beats:
        pipe.hgetall(keys.worker(worker))
    pipe.hvals(keys.prefix + "holder")
    *replies, holders = pipe.execute()
    leases = Counter(holder.split("\t", 1)[0] for holder in holders)
    per_host = []
    for index, host in enumerate(hosts):
        fields, breaker = replies[2 * index], replies[2 * index + 1]
        row: dict[str, Any] = {"host": host}
        row.update({name: int(fields.get(short, 0)) for short, name in _HOST_FIELDS.items()})
        row["breaker"] = breaker or "closed"
        per_host.append(row)
    workers = []
    for (worker, beat), fields in zip(beats, replies[2 * len(hosts) :], strict=True):
        info = json.loads(fields.get("info") or "{}")
        age = (now_ms - beat) / 1000
        lease = float(info.pop("lease_s", _DEFAULT_LEASE_S))
        pages = int(fields.get("pages", 0))
        lifetime = max((now_ms - int(fields.get("joined", now_ms))) / 1000, 1e-3)
        workers.append(
            {
                "worker": worker,
                "alive": age <= lease,
                "last_beat_s": round(age, 1),
                "pages": pages,
                "pages_per_s": round(pages / lifetime, 1),
                "leases": leases.get(worker, 0),
                **info,
            }
        )
    counts = {name: int(stats.get(name, 0)) for name in ("done", "failed", "skipped", "bytes")}
    queued = int(stats.get("queued", 0))
    alive = [w for w in workers if w["alive"]]
    finished = queued <= 0 and leased == 0 and meta.get("seeded") == "1"
    started = int(meta.get("started", now_ms))
    until = int(stats.get("last", now_ms)) if finished else now_ms
    elapsed = max((until - started) / 1000, 1e-9)
    if finished:
        state = "finished"
    elif alive:
        state = "running"
    else:
        state = "waiting for workers"
    return {
        "crawl_id": keys.crawl_id,
        "frontier": url,
        "state": state,
        "start_urls": options["urls"],
        "options": options["options"],
        "elapsed_s": round((now_ms - started) / 1000, 1),
        "queued": max(queued, 0),
        "leased": leased,
        **counts,
        "seen": int(meta.get("n", 0)),
        "pages_per_s": round((counts["done"] + counts["failed"]) / elapsed, 1),
        "workers_alive": len(alive),
        "workers": workers,
        "hosts": per_host,
    }


def crawl_totals(url: str, crawl_id: str) -> dict[str, int]:
    """The crawl's URLs queued, leased, done, failed and skipped, and its workers alive: a
    few reads whatever the number of hosts, cheap enough for each worker's every scrape."""
    try:
        client = sync_client(url)
        keys = CrawlKeys(crawl_id)
        pipe = client.pipeline(transaction=False)
        pipe.hgetall(keys.stats)
        pipe.zcard(keys.lease)
        pipe.zrange(keys.workers, 0, -1, withscores=True)
        pipe.time()
        stats, leased, beats, (seconds, micros) = pipe.execute()
        pipe = client.pipeline(transaction=False)
        for worker, _ in beats:
            pipe.hget(keys.worker(worker), "info")
        infos = pipe.execute()
    except REDIS_DOWN as exc:
        raise unreachable(url, exc, _HINT) from None
    now_ms = int(seconds) * 1000 + int(micros) // 1000
    alive = 0
    for (_, beat), info in zip(beats, infos, strict=True):
        lease = float(json.loads(info or "{}").get("lease_s", _DEFAULT_LEASE_S))
        alive += (now_ms - beat) / 1000 <= lease
    totals = {name: int(stats.get(name, 0)) for name in ("done", "failed", "skipped")}
    queued = max(int(stats.get("queued", 0)), 0)
    return {"queued": queued, "leased": int(leased), **totals, "workers_alive": alive}


def forget_crawl(url: str, crawl_id: str | None = None, *, force: bool = False) -> int:
    """Delete every key of a crawl; refused while workers are alive unless `force`.

    Returns how many keys were deleted.
    """
    try:
        client = sync_client(url)
        keys = _pick(url, crawl_id, client)
        if not force:
            alive = [w for w in _status(url, client, keys)["workers"] if w["alive"]]
            if alive:
                names = ", ".join(w["worker"] for w in alive)
                raise CrawlError(
                    f"crawl {keys.crawl_id} has {len(alive)} live worker(s) ({names}): stop "
                    "them first, or pass --force"
                )
        deleted = 0
        batch: list[str] = []
        for key in client.scan_iter(keys.pattern(), 1000):
            batch.append(key)
            if len(batch) >= 1000:
                deleted += int(client.unlink(*batch))
                batch = []
        if batch:
            deleted += int(client.unlink(*batch))
        return deleted
    except REDIS_DOWN as exc:
        raise unreachable(url, exc, _HINT) from None
