"""Fixtures for the whole suite: `browser`, a fresh headless Chromium for the web pages' tests
(tests/harness/browser.py; it fails, never skips, when Chromium is missing)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from tests.harness.browser import Browser


@pytest.fixture
def browser() -> Iterator[Browser]:
    """A fresh headless Chromium (own profile, 1280x900 viewport), quit after the test."""
    from tests.harness.browser import Browser

    with Browser() as started:
        yield started
