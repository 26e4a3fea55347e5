"""Take the README's screenshots of the web pages with the tests' browser harness.

Each page is served for real (`ishan ... serve --port 0`), opened in headless Chromium
(tests/harness/browser.py), put in a state worth showing, and saved as a PNG under docs/ (reduced to
a 256-colour palette when Pillow is installed, to keep the repository small).

Run, from the repository root: .venv/bin/python -m scripts.screenshots
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from tests.harness.browser import Browser
from tests.harness.processes import start_server, stop_process

ROOT = Path(__file__).resolve().parents[1]
ISHAN = Path(sys.executable).with_name("ishan")
DOCS = ROOT / "docs"


def serve(*command: str) -> tuple[subprocess.Popen[str], str]:
    """Start `ishan <command> --port 0` and return it with the URL it reports."""
    return start_server([str(ISHAN), *command, "--port", "0"])


def shrink(path: Path) -> None:
    try:
        from PIL import Image
    except ImportError:
        return
    with Image.open(path) as image:
        image.convert("RGB").quantize(256, dither=Image.Dither.NONE).save(path, optimize=True)


def players_page(browser: Browser) -> Path:
    """Players like Pedri aged 24 or under, the second match's radar open."""
    process, url = serve("players", "serve")
    try:
        browser.viewport(1440, 1000)
        browser.open(f"{url}/?like=251854&max_age=24&sel=232411")
        browser.wait_for(lambda d: browser.find("#detail").get_attribute("data-player"))
        browser.wait_for(lambda d: browser.find("#results-title").text == "Most like Pedri")
        errors = browser.console_errors()
        if errors:
            raise SystemExit(f"the players page logged errors: {errors}")
        target = browser.screenshot(DOCS / "players-page.png", full_page=True)
    finally:
        stop_process(process)
    shrink(target)
    return target


def main() -> None:
    with Browser() as browser:
        for take in (players_page,):
            path = take(browser)
            print(f"wrote {path.relative_to(ROOT)} ({path.stat().st_size // 1024} KB)")


if __name__ == "__main__":
    main()
