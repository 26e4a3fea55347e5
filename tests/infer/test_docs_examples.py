"""The Python examples in docs/infer run against a real service with the default model.

The pages talk to `ishan infer serve` on `http://127.0.0.1:1337`; here that address is a
coordinator started for the test, with one SmolLM2 worker (greedy output, so the text the
page shows is the text the example prints).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.docs_examples import Example, examples

DOCUMENTED_URL = "http://127.0.0.1:1337"
INFER_EXAMPLES = [example for example in examples("infer") if not example.not_run]


def test_the_infer_pages_have_examples() -> None:
    assert INFER_EXAMPLES


@pytest.mark.parametrize("example", INFER_EXAMPLES, ids=lambda example: example.id)
def test_infer_example_prints_what_the_page_shows(
    example: Example, cluster: Any, smollm2: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    service = cluster(model=smollm2)
    service.add_worker("w1", ctx=2048, threads=2)
    monkeypatch.chdir(tmp_path)
    printed = example.run({DOCUMENTED_URL: service.url})
    assert example.output is not None
    assert printed.strip() == example.output.strip()
