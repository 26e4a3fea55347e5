"""The crawler's examples in docs/crawl run against the fixture site.

The pages crawl `http://127.0.0.1:8000/` (the local http.server of the guide); here that
address is the fixture site's. An example that does not crawl it prints what the page shows.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from ..docs_examples import Example, examples
from .conftest import FixtureServer

DOCUMENTED_SITE = "http://127.0.0.1:8000/"
CRAWL_EXAMPLES = [example for example in examples("crawl") if not example.not_run]


def test_the_crawl_pages_have_examples() -> None:
    assert len(CRAWL_EXAMPLES) >= 2


@pytest.mark.parametrize("example", CRAWL_EXAMPLES, ids=lambda example: example.id)
def test_crawl_example_runs(
    example: Example, site: FixtureServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    printed = example.run({DOCUMENTED_SITE: site.url("/")})
    if DOCUMENTED_SITE in example.code:
        assert site.count("/") == 1
        pages, saved, stop_reason = printed.splitlines()[0].split()
        assert int(pages) > 1 and int(saved) > 1 and stop_reason == "complete"
    elif example.output is not None:
        assert printed == example.output
