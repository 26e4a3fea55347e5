"""Take the docs' screenshots of the web pages and of the docs site, with the tests' browser.

Each page is served for real (`ishan ... serve --port 0`; the site built by `mkdocs build`
and served by `http.server`), opened in headless Chromium (tests/harness/browser.py), put in a
state worth showing, and saved as a PNG under docs/ (reduced to a 256-colour palette when
Pillow is installed, to keep the repository small). The scouting page is taken once in each
theme, light and dark, as a reader's system setting picks them
(docs/players/players-page-light.png, docs/players/players-page-dark.png); the chat page's two
are taken by its browser test: ISHAN_SCREENSHOTS=1 pytest tests/infer/test_page.py -k
light_and_dark.

Run, from the repository root: .venv/bin/python -m scripts.screenshots [--site | --pages]
"""

from __future__ import annotations

import argparse
import functools
import http.server
import subprocess
import sys
import tempfile
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from tests.harness.browser import Browser, shrink_png
from tests.harness.processes import start_server, stop_process

ROOT = Path(__file__).resolve().parents[1]
ISHAN = Path(sys.executable).with_name("ishan")
DOCS = ROOT / "docs"


def serve(*command: str) -> tuple[subprocess.Popen[str], str]:
    """Start `ishan <command> --port 0` and return it with the URL it reports."""
    return start_server([str(ISHAN), *command, "--port", "0"])


def players_page(browser: Browser) -> list[Path]:
    """Players like Pedri aged 24 or under, the second match's radar open: light, then dark."""
    process, url = serve("players", "serve")
    try:
        browser.viewport(1440, 1000)
        browser.open(f"{url}/?like=251854&max_age=24&sel=232411")
        browser.wait_for(lambda d: browser.find("#detail").get_attribute("data-player"))
        browser.wait_for(lambda d: browser.find("#results-title").text == "Most like Pedri")
        errors = browser.console_errors()
        if errors:
            raise SystemExit(f"the players page logged errors: {errors}")
        targets = []
        for scheme in ("light", "dark"):
            browser.color_scheme(scheme)
            shot = browser.screenshot(
                DOCS / "players" / f"players-page-{scheme}.png", full_page=True
            )
            targets.append(shrink_png(shot))
    finally:
        stop_process(process)
    return targets


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:
        """No line per request."""


@contextmanager
def built_site() -> Iterator[str]:
    """`mkdocs build` into a temporary folder, served on 127.0.0.1 (a free port)."""
    with tempfile.TemporaryDirectory(prefix="ishan-site-") as folder:
        subprocess.run(
            [str(Path(sys.executable).with_name("mkdocs")), "build", "--quiet", "-d", folder],
            cwd=ROOT,
            check=True,
        )
        handler = functools.partial(_QuietHandler, directory=folder)
        server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
        thread = threading.Thread(target=server.serve_forever, daemon=True)
        thread.start()
        try:
            yield f"http://127.0.0.1:{server.server_address[1]}"
        finally:
            server.shutdown()
            server.server_close()


def site(browser: Browser) -> list[Path]:
    """The docs site's home page, whole: navigation, lists, code, a table."""
    with built_site() as url:
        browser.viewport(1440, 1100)
        browser.open(f"{url}/")
        browser.wait_for(lambda d: browser.find(".md-nav__list"))
        errors = browser.console_errors()
        if errors:
            raise SystemExit(f"the docs site logged errors: {errors}")
        target = browser.screenshot(DOCS / "site.png", full_page=True)
    return [shrink_png(target)]


def main() -> None:
    parser = argparse.ArgumentParser(description="Retake the screenshots under docs/.")
    which = parser.add_mutually_exclusive_group()
    which.add_argument("--site", action="store_true", help="only the docs site")
    which.add_argument("--pages", action="store_true", help="only the web pages")
    args = parser.parse_args()
    takes: list[Callable[[Browser], list[Path]]] = []
    if not args.site:
        takes.append(players_page)
    if not args.pages:
        takes.append(site)
    with Browser() as browser:
        for take in takes:
            for path in take(browser):
                print(f"wrote {path.relative_to(ROOT)} ({path.stat().st_size // 1024} KB)")


if __name__ == "__main__":
    main()
