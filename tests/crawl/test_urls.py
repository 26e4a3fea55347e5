"""URL normalization and link resolution, as a user sees them in the manifest."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ishan_tools.crawl import CrawlConfig, Crawler
from ishan_tools.crawl.urls import LinkResolver, host_key, normalize, parse_seed, url_hash
from ishan_tools.errors import UsageError


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("HTTP://Example.COM:80/a/./b/../c#frag", "http://example.com/a/c"),
        ("https://example.com:443", "https://example.com/"),
        ("https://example.com:8443/x", "https://example.com:8443/x"),
        ("https://example.com/a b/é", "https://example.com/a%20b/%C3%A9"),
        ("https://example.com/%7Euser/%41", "https://example.com/~user/A"),
        ("https://example.com/../../x", "https://example.com/x"),
        ("https://example.com/a/..", "https://example.com/"),
        ("https://example.com/?b=2&a=1", "https://example.com/?b=2&a=1"),
        ("https://bücher.example/", "https://xn--bcher-kva.example/"),
        ("ftp://example.com/", None),
        ("https:///nohost", None),
        ("https://exa mple.com/", None),
        ("http://example.com:99999/", None),
        ("http://example.com:8080/a/b?x=1", "http://example.com:8080/a/b?x=1"),
        ("https://example.com:443/a", "https://example.com/a"),
        ("http://example.com./a", "http://example.com/a"),
        ("http://example.com/a/.", "http://example.com/a/"),
    ],
)
def test_normalize(raw: str, expected: str | None) -> None:
    assert normalize(raw) == expected


def test_sorted_query_is_optional() -> None:
    assert normalize("https://e.com/?b=2&a=1", sort_query=True) == "https://e.com/?a=1&b=2"


@given(st.text(alphabet="abc./%?#&=", max_size=30))
def test_normalize_is_idempotent(path: str) -> None:
    once = normalize("https://example.com/" + path)
    if once is not None:
        assert normalize(once) == once


def test_bare_hostname_becomes_https() -> None:
    assert parse_seed("example.com") == "https://example.com/"
    assert parse_seed("http://example.com/docs") == "http://example.com/docs"


@pytest.mark.parametrize("bad", ["", "   ", "ftp://x.org/", "http://", "https://a b/"])
def test_invalid_seed_is_a_usage_error(bad: str) -> None:
    with pytest.raises(UsageError):
        parse_seed(bad)


def test_host_rule_ignores_scheme_but_not_port() -> None:
    assert host_key("http://example.com/") == host_key("https://example.com/x")
    assert host_key("http://example.com:8080/") != host_key("http://example.com/")
    assert host_key("https://docs.example.com/") == "docs.example.com"


@pytest.mark.parametrize(
    ("url", "subdomains", "reason"),
    [
        ("https://example.com/a", False, None),
        ("http://example.com/a", False, None),
        ("https://example.com:8443/a", False, "other_host"),
        ("https://docs.example.com/a", False, "other_host"),
        ("https://docs.example.com/a", True, None),
        ("https://a.b.example.com/a", True, None),
        ("https://badexample.com/a", True, "other_host"),
    ],
)
def test_crawl_scope(url: str, subdomains: bool, reason: str | None) -> None:
    config = CrawlConfig(seed="example.com", allow_subdomains=subdomains)
    assert Crawler(config).scope(url) == reason


def test_resolver_resolves_each_href_against_its_page() -> None:
    resolver = LinkResolver()
    hrefs = ["b.html", "../c.html", "/d", "?q=1", "#top", "mailto:x@y", "//other.org/e"]
    first = resolver.resolve("https://e.com/dir/a.html", hrefs)
    assert first == {
        "b.html": "https://e.com/dir/b.html",
        "../c.html": "https://e.com/c.html",
        "/d": "https://e.com/d",
        "?q=1": "https://e.com/dir/a.html?q=1",
        "#top": None,
        "mailto:x@y": None,
        "//other.org/e": "https://other.org/e",
    }
    # the same hrefs from another page of the same directory, and of another directory
    assert resolver.resolve("https://e.com/dir/z.html", ["b.html", "?q=1"]) == {
        "b.html": "https://e.com/dir/b.html",
        "?q=1": "https://e.com/dir/z.html?q=1",
    }
    assert resolver.resolve("https://e.com/other/", ["b.html"]) == {
        "b.html": "https://e.com/other/b.html"
    }


def test_file_name_is_the_documented_hash() -> None:
    import hashlib

    url = "https://example.com/"
    assert url_hash(url) == hashlib.sha256(url.encode()).hexdigest()[:16]
