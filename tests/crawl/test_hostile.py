"""Hostile pages: each problem is logged as an event and skipped; the crawl goes on."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from .conftest import FixtureServer, serve
from .helpers import Recorder, manifest, run_crawl, saved_page


@pytest.fixture(scope="module")
def hostile(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[tuple[FixtureServer, Path, dict[str, Any], Recorder]]:
    """One crawl of the hostile page, shared by the tests that read its outcome."""
    with serve() as site:
        out = tmp_path_factory.mktemp("hostile") / "out"
        summary, events = run_crawl(
            site.url("/hostile.html"),
            out,
            max_depth=-1,
            timeout=1.0,
            retries=1,
            backoff=0.05,
            max_page_bytes=100_000,
            max_query_variants=5,
            max_url_length=100,
        )
        yield site, out, summary, events


def test_crawl_completes_and_keeps_every_good_page(hostile: Any) -> None:
    site, out, summary, _ = hostile
    assert summary["stop_reason"] == "complete"
    saved = {r["final_url"] for r in manifest(out).values() if r["file"]}
    # reached by a redirect or by a link, saved once under its own URL's hash
    assert site.url("/about.html") in saved
    assert saved_page(out, site.url("/about.html")).startswith(b"<!doctype html>")
    assert saved_page(out, site.url("/flaky")) == b"<p>flaky page, second try</p>"


def test_each_failure_is_an_event_and_a_manifest_error(hostile: Any) -> None:
    site, out, summary, events = hostile
    records = manifest(out)
    kinds = {e["url"]: e["kind"] for e in events.named("fetch_err")}
    expected = {
        "/redirect/loop-a": "redirect_loop",
        "/redirect/offsite": "redirect_refused",
        "/status/404": "http_404",
        "/status/500": "http_500",
        "/slow": "timeout",
        "/huge": "too_large",
        "/truncated": "truncated",
        "/reset": "connection",
    }
    for path, kind in expected.items():
        assert kinds.get(site.url(path)) == kind, path
        record = records[site.url(path)]
        assert record["file"] is None and record["error"].startswith(kind.split("_")[0])
    assert summary["errors_by_kind"]["http_404"] == 1
    # the off-site redirect target was never requested: only the local hop was
    assert site.count("/redirect/offsite") == 1


def test_retry_after_is_honoured_for_429_and_503(hostile: Any) -> None:
    site, out, _summary, events = hostile
    records = manifest(out)
    for path in ("/flaky", "/ratelimited"):
        assert site.count(path) == 2
        assert records[site.url(path)]["status"] == 200
    waits = {e["url"]: e["wait_s"] for e in events.named("retry")}
    assert waits[site.url("/flaky")] == 1.0
    assert waits[site.url("/ratelimited")] == 1.0
    # 500 is retried once (retries=1) with backoff, then given up
    assert site.count("/status/500") == 2
    # 404 is not retried
    assert site.count("/status/404") == 1


def test_redirect_to_a_known_url_does_not_fetch_it_twice(hostile: Any) -> None:
    site, out, _, events = hostile
    record = manifest(out)[site.url("/redirect/about")]
    assert record["final_url"] == site.url("/about.html")
    assert any(e["location"] == site.url("/about.html") for e in events.named("redirect"))
    assert site.count("/about.html") == 1


def test_redirected_seed_is_saved_under_its_final_url(site: FixtureServer, tmp_path: Path) -> None:
    out = tmp_path / "out"
    run_crawl(site.url("/redirect/about"), out, max_depth=0)
    record = manifest(out)[site.url("/redirect/about")]
    assert record["status"] == 200 and record["final_url"] == site.url("/about.html")
    assert saved_page(out, site.url("/about.html")).startswith(b"<!doctype html>")


def test_binary_served_as_html_is_not_saved(hostile: Any) -> None:
    site, out, _, _ = hostile
    record = manifest(out)[site.url("/binary.html")]
    assert record["file"] is None and record["error"].startswith("not_html")


def test_mixed_encodings_are_saved_as_sent_and_their_links_followed(hostile: Any) -> None:
    site, out, _, _ = hostile
    body = saved_page(out, site.url("/mixed.html"))
    assert b"caf\xe9 \xff\xfe" in body


def test_traps_are_capped(hostile: Any) -> None:
    site, _out, _summary, events = hostile
    calendar = [p for p in site.hits if p.startswith("/trap/calendar")]
    grow = [p for p in site.hits if p.startswith("/trap/grow")]
    assert len(calendar) == 5  # max_query_variants
    assert len(grow) == 4  # the fifth URL is over 100 characters
    reasons = {e["reason"] for e in events.named("link_skip")}
    assert {"query_trap", "url_too_long"} <= reasons


def test_etag_refresh_sends_conditional_requests_and_counts_304(
    site: FixtureServer, tmp_path: Path
) -> None:
    out = tmp_path / "out"
    run_crawl(site.url("/etag.html"), out)
    first = manifest(out)[site.url("/etag.html")]
    assert first["etag"] == '"v1"'
    summary, _events = run_crawl(site.url("/etag.html"), out, refresh=True)
    assert summary["not_modified"] == 1
    record = manifest(out)[site.url("/etag.html")]
    assert record["status"] == 304 and record["file"] == first["file"]
    assert (out / first["file"]).exists()
    # the saved copy's links are still followed on a 304
    assert site.count("/about.html") == 2


def test_malformed_robots_txt_is_tolerated(site: FixtureServer, tmp_path: Path) -> None:
    site.robots = "\x00\xff garbage\nDisallow /no-colon\nUser-agent\n::::\nDisallow: /docs/\n"
    out = tmp_path / "out"
    summary, _ = run_crawl(site.url("/"), out)
    assert summary["stop_reason"] == "complete"
    assert site.url("/about.html") in manifest(out)


def test_seed_that_redirects_to_another_host_moves_the_crawl_there(
    site: FixtureServer, tmp_path: Path
) -> None:
    out = tmp_path / "out"
    seed = f"http://localhost:{site.server_address[1]}/redirect/to-ip"
    _, events = run_crawl(seed, out, max_pages=2)
    assert events.named("seed_moved")[0]["host"] == f"127.0.0.1:{site.server_address[1]}"
    assert manifest(out)[seed]["final_url"] == site.url("/")
    # a resumed crawl stays on the host the seed moved to
    run_crawl(seed, out, resume=True, max_depth=2)
    records = manifest(out)
    assert records[site.url("/about.html")]["status"] == 200
    assert records[site.url("/docs/a.html")]["status"] == 200


def test_tabs_and_newlines_in_links_are_removed_before_the_scheme_is_read(
    site: FixtureServer, tmp_path: Path
) -> None:
    """`java\\nscript:` and `java\\tscript:` are javascript: links, as a browser reads them
    (WHATWG URL: controls and spaces stripped at the ends, tabs and newlines removed)."""
    summary, _ = run_crawl(site.url("/whatwg-links.html"), tmp_path / "out", max_depth=1)
    assert summary["stop_reason"] == "complete"
    fetched = list(site.hits)
    assert not [path for path in fetched if "script" in path or "stolen" in path], fetched
    assert site.count("/docs/a.html") == 1 and site.count("/about.html") == 1
    assert set(manifest(tmp_path / "out")) == {
        site.url(p) for p in ("/whatwg-links.html", "/docs/a.html", "/about.html")
    }
