"""Several start URLs in one crawl: each is its own site with today's per-site rules."""

from __future__ import annotations

from pathlib import Path

from typer.testing import CliRunner

from ishan_tools.cli import app
from ishan_tools.crawl.sites import crawl_id_for, read_seeds_file

from .conftest import FixtureServer
from .helpers import manifest, run_crawl


def _cross_link(sites: list[FixtureServer], pages: int = 5) -> None:
    """Each site's /dyn/ index links to its own pages and to a page of the next site."""
    for index, site in enumerate(sites):
        site.dyn_pages = pages
        site.dyn_links = [sites[(index + 1) % len(sites)].url("/dyn/p0")]


def test_each_start_url_is_crawled_as_its_own_site(
    sites: list[FixtureServer], tmp_path: Path
) -> None:
    _cross_link(sites)
    out = tmp_path / "out"
    seeds = [site.url("/dyn/") for site in sites]
    _, events = run_crawl(seeds[0], out, seeds=seeds[1:], max_depth=-1)
    records = manifest(out)
    for site in sites:
        # every site's own pages, each fetched once: its own crawl found them
        assert site.count("/dyn/") == 1
        assert len(site.dyn_hits()) == 5 and set(site.dyn_hits().values()) == {1}
        assert all(records[site.url(f"/dyn/p{i}")]["status"] == 200 for i in range(5))
    assert len(records) == 18
    # a link to another site of the crawl is a link to another host, not followed from there
    # (logged unless that site's own crawl had queued it already)
    cross = {(seeds[i], sites[(i + 1) % 3].url("/dyn/p0"), "other_host") for i in range(3)}
    skips = {(e["page"], e["url"], e["reason"]) for e in events.named("link_skip")}
    assert skips and skips <= cross
    summary = events.named("summary")[0]
    assert summary["seeds"] == seeds and summary["seed"] == seeds[0]
    assert [e["url"] for e in events.named("seed")] == seeds


def test_depth_counts_from_each_sites_own_start_url(
    sites: list[FixtureServer], tmp_path: Path
) -> None:
    _cross_link(sites)
    out = tmp_path / "out"
    run_crawl(sites[0].url("/dyn/"), out, seeds=[sites[1].url("/dyn/p3")], max_depth=0)
    assert set(manifest(out)) == {sites[0].url("/dyn/"), sites[1].url("/dyn/p3")}


def test_a_start_url_that_redirects_elsewhere_moves_only_its_own_site(
    sites: list[FixtureServer], tmp_path: Path
) -> None:
    _cross_link(sites, pages=3)
    sites[0].moved_to = sites[2].url("/dyn/")
    out = tmp_path / "out"
    seeds = [sites[0].url("/redirect/moved"), sites[1].url("/dyn/")]
    _, events = run_crawl(seeds[0], out, seeds=seeds[1:], max_depth=-1)
    assert events.named("seed_moved")[0]["host"] == sites[2].netloc
    records = manifest(out)
    assert all(records[sites[2].url(f"/dyn/p{i}")]["status"] == 200 for i in range(3))
    assert all(records[sites[1].url(f"/dyn/p{i}")]["status"] == 200 for i in range(3))
    assert len(sites[0].dyn_hits()) == 0  # linked from site 3's pages: another host there


def test_seeds_file_and_arguments_together(sites: list[FixtureServer], tmp_path: Path) -> None:
    _cross_link(sites, pages=2)
    seeds = tmp_path / "seeds.txt"
    seeds.write_text(
        f"# the fixture sites\n{sites[1].url('/dyn/')}\n\n  {sites[2].netloc}/dyn/  # bare\n"
    )
    assert read_seeds_file(seeds) == [sites[1].url("/dyn/"), f"{sites[2].netloc}/dyn/"]
    out = tmp_path / "out"
    args = ["crawl", sites[0].url("/dyn/"), "--seeds", str(seeds), "-o", str(out), "-q"]
    result = CliRunner().invoke(app, args)
    # the bare host got https://, which these plain-HTTP servers refuse: that site fails alone
    assert result.exit_code == 0, result.output
    records = manifest(out)
    assert records[sites[1].url("/dyn/p1")]["status"] == 200
    assert records[f"https://{sites[2].netloc}/dyn/"]["error"].startswith("connection")
    assert "start URLs" in result.stdout


def test_a_crawl_whose_every_start_url_fails_exits_1(tmp_path: Path) -> None:
    args = ["crawl", "http://127.0.0.1:9/", "http://127.0.0.2:9/", "-o", str(tmp_path / "o")]
    result = CliRunner().invoke(app, [*args, "-q", "--retries", "0"])
    assert result.exit_code == 1
    assert "cannot fetch any of the 2 start URLs" in result.stderr


def test_resume_needs_the_same_start_urls(sites: list[FixtureServer], tmp_path: Path) -> None:
    _cross_link(sites, pages=2)
    out = tmp_path / "out"
    first = [sites[0].url("/dyn/"), sites[1].url("/dyn/")]
    runner = CliRunner()
    assert runner.invoke(app, ["crawl", *first, "-o", str(out), "-q"]).exit_code == 0
    again = runner.invoke(app, ["crawl", first[0], "-o", str(out), "--resume", "-q"])
    assert again.exit_code == 2
    assert "holds a crawl of" in again.stderr
    same = runner.invoke(app, ["crawl", *first, "-o", str(out), "--resume", "-q"])
    assert same.exit_code == 0, same.output


def test_no_start_url_is_a_usage_error(tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["crawl", "run", "-o", str(tmp_path / "o")])
    assert result.exit_code == 2
    assert "no start URL" in result.stderr


def test_the_default_crawl_id_depends_on_the_start_urls_only() -> None:
    one = crawl_id_for(["http://a.example/", "http://b.example/"])
    assert one == crawl_id_for(["http://b.example/", "http://a.example/"])
    assert one.startswith("a.example-")
    assert one != crawl_id_for(["http://a.example/"])
