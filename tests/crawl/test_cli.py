"""`ishan crawl` options, exit codes and output, through Typer's CliRunner."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from ishan_tools.cli import app
from tests.harness.ports import free_port

from .conftest import FixtureServer
from .helpers import manifest


@pytest.fixture
def runner() -> CliRunner:
    return CliRunner()


def test_crawl_writes_json_events_when_stdout_is_not_a_terminal(
    runner: CliRunner, site: FixtureServer, tmp_path: Path
) -> None:
    out = tmp_path / "out"
    result = runner.invoke(app, ["crawl", site.url("/"), "-o", str(out)])
    assert result.exit_code == 0, result.output
    events = [json.loads(line) for line in result.stdout.splitlines()]
    names = [e["event"] for e in events]
    assert names[0] == "seed" and names[-1] == "summary"
    assert {"fetch", "response", "save", "link_skip", "robots_skip", "skip_links"} <= set(names)
    assert all(isinstance(e["ts"], float) for e in events)
    summary = events[-1]
    assert summary["pages"] == len(manifest(out))
    assert summary["stop_reason"] == "complete"


def test_quiet_prints_only_the_summary(
    runner: CliRunner, site: FixtureServer, tmp_path: Path
) -> None:
    result = runner.invoke(app, ["crawl", site.url("/"), "-o", str(tmp_path / "o"), "-q"])
    assert result.exit_code == 0
    assert "pages fetched" in result.stdout and "crawl complete" in result.stdout
    assert '"event"' not in result.stdout


def test_rich_display_ends_with_the_summary_table(
    runner: CliRunner, site: FixtureServer, tmp_path: Path
) -> None:
    args = ["crawl", site.url("/"), "-o", str(tmp_path / "o"), "--log-format", "rich"]
    result = runner.invoke(app, args)
    assert result.exit_code == 0
    assert "pages saved" in result.stdout and "rate" in result.stdout
    assert '"event"' not in result.stdout


def test_options_reach_the_server(runner: CliRunner, site: FixtureServer, tmp_path: Path) -> None:
    args = ["crawl", site.url("/"), "-o", str(tmp_path / "o"), "--depth", "0", "-q"]
    args += ["--user-agent", "TestBot/1.0", "-H", "X-Token: abc"]
    assert runner.invoke(app, args).exit_code == 0
    headers = site.headers_seen["/"]
    assert headers["User-Agent"] == "TestBot/1.0"
    assert headers["X-Token"] == "abc"


def test_user_agent_from_environment_and_flag_precedence(
    runner: CliRunner, site: FixtureServer, tmp_path: Path
) -> None:
    env = {"ISHAN_CRAWL_USER_AGENT": "EnvBot/2.0"}
    args = ["crawl", site.url("/"), "-o", str(tmp_path / "a"), "-d", "0", "-q"]
    assert runner.invoke(app, args, env=env).exit_code == 0
    assert site.headers_seen["/"]["User-Agent"] == "EnvBot/2.0"
    args = ["crawl", site.url("/"), "-o", str(tmp_path / "b"), "-d", "0", "-q", "-A", "FlagBot"]
    assert runner.invoke(app, args, env=env).exit_code == 0
    assert site.headers_seen["/"]["User-Agent"] == "FlagBot"


def test_default_user_agent_names_the_toolkit(
    runner: CliRunner, site: FixtureServer, tmp_path: Path
) -> None:
    runner.invoke(app, ["crawl", site.url("/"), "-o", str(tmp_path / "a"), "-d", "0", "-q"])
    assert site.headers_seen["/"]["User-Agent"].startswith("ishan-crawl/")


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["ftp://example.com/"], "invalid seed URL"),
        (["http://127.0.0.1:1/", "--resume", "--overwrite"], "contradict"),
        (["http://127.0.0.1:1/", "--include", "("], "not a valid regular expression"),
        (["http://127.0.0.1:1/", "--concurrency", "0"], "--concurrency must be at least 1"),
        (["http://127.0.0.1:1/", "--depth", "-5"], "--depth must be -1"),
        (["http://127.0.0.1:1/", "-H", "no colon"], "Name: value"),
        (["http://127.0.0.1:1/", "--breaker-slow", "0"], "--breaker-slow must be positive"),
    ],
)
def test_bad_usage_exits_2_with_one_line(
    runner: CliRunner, tmp_path: Path, args: list[str], message: str
) -> None:
    result = runner.invoke(app, ["crawl", *args, "-o", str(tmp_path / "o")])
    assert result.exit_code == 2
    assert message in result.stderr


def test_unreachable_seed_exits_1(runner: CliRunner, tmp_path: Path) -> None:
    url = f"http://127.0.0.1:{free_port()}/"
    result = runner.invoke(app, ["crawl", url, "-o", str(tmp_path / "o"), "-q", "--retries", "0"])
    assert result.exit_code == 1
    assert result.stderr.strip().splitlines()[-1].startswith("error: cannot fetch the seed")


def test_missing_seed_page_exits_1(runner: CliRunner, site: FixtureServer, tmp_path: Path) -> None:
    result = runner.invoke(app, ["crawl", site.url("/status/404"), "-o", str(tmp_path / "o")])
    assert result.exit_code == 1
    assert "cannot fetch the seed" in result.stderr and "404" in result.stderr


def test_unwritable_out_dir_fails_before_any_fetch(
    runner: CliRunner, site: FixtureServer, tmp_path: Path
) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory")
    result = runner.invoke(app, ["crawl", site.url("/"), "-o", str(blocker / "out")])
    assert result.exit_code == 1
    assert "cannot write to out dir" in result.stderr
    assert sum(site.hits.values()) == 0


def test_existing_crawl_is_refused_then_overwritten(
    runner: CliRunner, site: FixtureServer, tmp_path: Path
) -> None:
    out = tmp_path / "out"
    assert runner.invoke(app, ["crawl", site.url("/"), "-o", str(out), "-q"]).exit_code == 0
    pages = sorted(p.name for p in out.glob("*.html"))
    refused = runner.invoke(app, ["crawl", site.url("/"), "-o", str(out), "-q"])
    assert refused.exit_code == 2
    assert "already holds a crawl" in refused.stderr
    assert sorted(p.name for p in out.glob("*.html")) == pages  # nothing lost
    (out / "notes.txt").write_text("mine")
    args = ["crawl", site.url("/"), "-o", str(out), "-q", "--overwrite", "--depth", "0"]
    assert runner.invoke(app, args).exit_code == 0
    assert len(manifest(out)) == 1
    assert len(list(out.glob("*.html"))) == 1
    assert (out / "notes.txt").read_text() == "mine"  # files the crawl did not write stay


def test_resume_with_another_seed_is_refused(
    runner: CliRunner, site: FixtureServer, tmp_path: Path
) -> None:
    out = tmp_path / "out"
    runner.invoke(app, ["crawl", site.url("/"), "-o", str(out), "-q", "-d", "0"])
    result = runner.invoke(app, ["crawl", site.url("/about.html"), "-o", str(out), "--resume"])
    assert result.exit_code == 2
    assert "holds a crawl of" in result.stderr


def test_help_lists_the_command_and_its_options(runner: CliRunner) -> None:
    result = runner.invoke(app, ["--help"])
    assert "crawl" in result.stdout
    result = runner.invoke(app, ["crawl", "--help"])
    assert "run" in result.stdout and "ishan crawl run --help" in result.stdout
    result = runner.invoke(app, ["crawl", "run", "--help"])
    for option in ("--depth", "--max-pages", "--ignore-robots", "--resume", "--warc"):
        assert option in result.stdout


def test_max_crawl_delay_caps_a_robots_crawl_delay_from_flag_and_environment(
    runner: CliRunner, site: FixtureServer, tmp_path: Path
) -> None:
    site.robots = "User-agent: *\nCrawl-delay: 3600\n"  # an hour between requests, uncapped
    site.dyn_pages = 3
    for args, env in (
        (["--max-crawl-delay", "0.2"], {}),
        ([], {"ISHAN_CRAWL_MAX_CRAWL_DELAY": "0.1"}),
    ):
        out = tmp_path / f"o{len(args)}"
        result = runner.invoke(app, ["crawl", site.url("/dyn/"), "-o", str(out), *args], env=env)
        assert result.exit_code == 0, result.output
        events = [json.loads(line) for line in result.stdout.splitlines()]
        robots = [e for e in events if e["event"] == "robots"]
        assert robots[0]["crawl_delay"] == (0.2 if args else 0.1)
        fetches = [e["ts"] for e in events if e["event"] == "fetch"]
        assert len(fetches) == 4 and fetches[-1] - fetches[0] < 5  # capped: not an hour each
    bad = runner.invoke(app, ["crawl", site.url("/"), "--max-crawl-delay", "nan"])
    assert bad.exit_code == 2 and "--max-crawl-delay must be a finite number" in bad.output
