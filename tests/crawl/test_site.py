"""Crawling the fixture site: depth, host rule, robots.txt, nofollow, noindex, sitemap, types."""

from __future__ import annotations

import gzip
from pathlib import Path

import pytest

from ishan_tools.crawl import url_hash

from .conftest import FixtureServer
from .helpers import manifest, run_crawl, saved_page


def test_default_depth_fetches_the_homepage_and_its_links_only(
    site: FixtureServer, tmp_path: Path
) -> None:
    out = tmp_path / "out"
    summary, events = run_crawl(site.url("/"), out)
    records = manifest(out)
    assert site.url("/about.html") in records
    assert site.url("/docs/") in records
    # depth 2 pages are not fetched at the default depth 1
    assert site.count("/docs/a.html") == 0
    assert summary["stop_reason"] == "complete"
    # the page is saved under the documented name, byte for byte
    assert (
        saved_page(out, site.url("/about.html"))
        == (Path(__file__).parents[2] / "fixtures/crawl/site/about.html").read_bytes()
    )
    assert events.names()[0] == "seed"
    assert events.names()[-1] == "summary"


def test_unlimited_depth_reaches_every_linked_page_once(
    site: FixtureServer, tmp_path: Path
) -> None:
    out = tmp_path / "out"
    run_crawl(site.url("/"), out, max_depth=-1)
    records = manifest(out)
    for path in ("/docs/a.html", "/docs/b.html", "/docs/deep/c.html", "/from-noindex.html"):
        assert site.url(path) in records, path
    # about.html is linked four ways (relative, dot segments + fragment, upper-case scheme,
    # and from other pages): one fetch
    assert site.count("/about.html") == 1
    assert site.count("/docs/deep/c.html") == 1
    assert records[site.url("/docs/deep/c.html")]["depth"] == 3


def test_depth_zero_fetches_only_the_seed(site: FixtureServer, tmp_path: Path) -> None:
    out = tmp_path / "out"
    summary, _ = run_crawl(site.url("/"), out, max_depth=0)
    assert list(manifest(out)) == [site.url("/")]
    assert summary["pages"] == 1


def test_other_hosts_robots_and_nofollow_are_respected(site: FixtureServer, tmp_path: Path) -> None:
    out = tmp_path / "out"
    _, events = run_crawl(site.url("/"), out, max_depth=-1)
    assert site.count("/blocked/private.html") == 0
    assert site.count("/secret.html") == 0
    assert site.count("/hidden-by-nofollow.html") == 0
    assert [e["url"] for e in events.named("robots_skip")] == [site.url("/blocked/private.html")]
    skips = {(e["url"], e["reason"]) for e in events.named("link_skip")}
    assert ("https://example.invalid/elsewhere", "other_host") in skips
    assert (site.url("/secret.html"), "nofollow") in skips
    assert any(e["reason"] == "meta robots nofollow" for e in events.named("skip_links"))


def test_robots_group_for_our_user_agent_is_used(site: FixtureServer, tmp_path: Path) -> None:
    site.robots = "User-agent: ishan-crawl\nDisallow: /docs/\n\nUser-agent: *\nDisallow: /about\n"
    run_crawl(site.url("/"), tmp_path / "ours")
    assert site.count("/docs/") == 0 and site.count("/about.html") == 1
    run_crawl(site.url("/"), tmp_path / "other", user_agent="OtherBot/1.0")
    assert site.count("/docs/") == 1 and site.count("/about.html") == 1


def test_ignore_robots_fetches_disallowed_pages(site: FixtureServer, tmp_path: Path) -> None:
    out = tmp_path / "out"
    run_crawl(site.url("/"), out, obey_robots=False)
    assert site.count("/blocked/private.html") == 1
    assert site.count("/robots.txt") == 0


def test_noindex_page_is_not_saved_but_its_links_are_followed(
    site: FixtureServer, tmp_path: Path
) -> None:
    out = tmp_path / "out"
    run_crawl(site.url("/"), out, max_depth=2)
    records = manifest(out)
    assert records[site.url("/noindex.html")]["file"] is None
    assert not (out / f"{url_hash(site.url('/noindex.html'))}.html").exists()
    assert records[site.url("/from-noindex.html")]["file"] is not None


def test_non_html_is_skipped_by_default_and_saved_with_all_types(
    site: FixtureServer, tmp_path: Path
) -> None:
    out = tmp_path / "html"
    run_crawl(site.url("/"), out)
    record = manifest(out)[site.url("/logo.png")]
    assert record["file"] is None and record["error"] is None
    assert record["content_type"] == "image/png"

    everything = tmp_path / "all"
    run_crawl(site.url("/"), everything, all_types=True)
    record = manifest(everything)[site.url("/logo.png")]
    assert record["file"] == url_hash(site.url("/logo.png")) + ".png"
    assert (everything / record["file"]).read_bytes().startswith(b"\x89PNG")


def test_include_and_exclude_patterns(site: FixtureServer, tmp_path: Path) -> None:
    out = tmp_path / "out"
    run_crawl(site.url("/"), out, max_depth=-1, include=[r"/docs/|/$"], exclude=[r"/b\.html$"])
    fetched = set(manifest(out))
    assert site.url("/docs/a.html") in fetched
    assert site.url("/docs/b.html") not in fetched
    assert site.url("/about.html") not in fetched


def test_sitemap_seeds_pages_no_link_reaches(site: FixtureServer, tmp_path: Path) -> None:
    without = tmp_path / "without"
    run_crawl(site.url("/"), without, max_depth=-1)
    assert site.url("/orphan.html") not in manifest(without)
    with_sitemap = tmp_path / "with"
    _, events = run_crawl(site.url("/"), with_sitemap, sitemap=True)
    assert site.url("/orphan.html") in manifest(with_sitemap)
    assert events.named("sitemap")[0]["urls"] >= 1


def test_sitemap_index_from_robots_txt_is_followed(site: FixtureServer, tmp_path: Path) -> None:
    site.robots = "User-agent: *\nSitemap: /sitemap-index.xml\n"
    out = tmp_path / "out"
    _, events = run_crawl(site.url("/"), out, sitemap=True, max_depth=0)
    assert site.url("/orphan.html") in manifest(out)
    assert site.count("/sitemap-index.xml") == 1
    assert [e["url"] for e in events.named("fetch_err") if e["kind"] == "sitemap"] == [
        site.url("/missing-sitemap.xml")
    ]


def test_gzip_sitemap_is_read(site: FixtureServer, tmp_path: Path) -> None:
    site.robots = "User-agent: *\nSitemap: /sitemap.xml.gz\n"
    out = tmp_path / "out"
    run_crawl(site.url("/"), out, sitemap=True, max_depth=0)
    assert site.url("/orphan.html") in manifest(out)


def test_latin1_page_link_is_decoded_and_followed(site: FixtureServer, tmp_path: Path) -> None:
    out = tmp_path / "out"
    run_crawl(site.url("/"), out, max_depth=2)
    café = site.url("/caf%C3%A9.html")
    assert manifest(out)[café]["status"] == 200
    assert "Café page".encode() in saved_page(out, café)


def test_manifest_lines_carry_the_documented_fields(site: FixtureServer, tmp_path: Path) -> None:
    out = tmp_path / "out"
    run_crawl(site.url("/"), out)
    record = manifest(out)[site.url("/about.html")]
    assert set(record) == {
        "url", "final_url", "status", "content_type", "bytes", "depth", "file", "error",
        "fetched_at", "elapsed_ms", "etag", "last_modified",
    }  # fmt: skip
    assert record["status"] == 200 and record["depth"] == 1 and record["error"] is None
    assert record["bytes"] == len(saved_page(out, site.url("/about.html")))


def test_warc_file_holds_a_record_per_saved_page(site: FixtureServer, tmp_path: Path) -> None:
    from warcio.archiveiterator import ArchiveIterator

    out = tmp_path / "out"
    warc = tmp_path / "crawl.warc.gz"
    summary, _ = run_crawl(site.url("/"), out, warc=warc)
    with warc.open("rb") as fh:
        gzip.GzipFile(fileobj=fh).read(10)  # it is gzip
    with warc.open("rb") as fh:
        records = [
            (r.rec_headers.get_header("WARC-Target-URI"), r.content_stream().read())
            for r in ArchiveIterator(fh)
            if r.rec_type == "response"
        ]
    assert len(records) == summary["saved"]
    bodies = dict(records)
    assert bodies[site.url("/about.html")] == saved_page(out, site.url("/about.html"))


def test_existing_warc_is_not_overwritten_unless_asked(site: FixtureServer, tmp_path: Path) -> None:
    from ishan_tools.errors import UsageError

    warc = tmp_path / "crawl.warc.gz"
    warc.write_bytes(b"precious")
    with pytest.raises(UsageError, match="already exists"):
        run_crawl(site.url("/"), tmp_path / "out", warc=warc)
    assert warc.read_bytes() == b"precious"
    assert sum(site.hits.values()) == 0
    run_crawl(site.url("/"), tmp_path / "out", warc=warc, overwrite=True)
    assert not warc.read_bytes().startswith(b"precious")
