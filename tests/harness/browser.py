"""The project's one browser harness: Debian's Chromium driven by Selenium, headless, offline.

Every web page of the toolkit (the players scouting page, the infer chat page) is tested
through it, with the `browser` fixture of tests/conftest.py or directly:

    with Browser() as browser:
        browser.open(url)
        browser.wait_for(lambda driver: "Pedri" in driver.page_source, message="no Pedri")
        assert browser.console_errors() == []
        browser.screenshot(Path("docs/page.png"), full_page=True)
        browser.color_scheme("dark")  # the page as a reader whose system is dark sees it
        assert all(t["ratio"] >= t["needed"] for t in browser.text_contrasts())

Nothing is ever downloaded: the system's /usr/bin/chromium and /usr/bin/chromedriver are
passed explicitly and Selenium Manager is pointed at a path that does not exist, so a missing
Chromium is an error (scripts/test installs it), never a skip and never a fetch. Each browser
gets a fresh profile and download folder, removed when it quits.
"""

from __future__ import annotations

import base64
import os
import shutil
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from selenium import webdriver
from selenium.common.exceptions import StaleElementReferenceException, TimeoutException
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.remote.webdriver import WebDriver
from selenium.webdriver.remote.webelement import WebElement
from selenium.webdriver.support.wait import WebDriverWait

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
CHROMIUM_FLAGS = (
    "--headless=new",
    "--no-sandbox",
    "--disable-background-networking",
    "--disable-gpu",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--no-default-browser-check",
    "--disable-extensions",
    "--disable-dev-shm-usage",
    "--hide-scrollbars",
    "--mute-audio",
    "--lang=en-US",
)
T = TypeVar("T")

# What a reader sees of each visible piece of text: its colour and the colour behind it (the
# backgrounds of it and its ancestors composited, opacity included), and their WCAG contrast
# ratio, with the ratio WCAG AA needs (3:1 for large text, 4.5:1 otherwise). Disabled controls
# and animated elements (a blinking cursor) are left out, as WCAG leaves them out.
COLOUR_JS = """
const probe = document.createElement('canvas').getContext('2d', {willReadFrequently: true});
function rgba(value) {
  probe.clearRect(0, 0, 1, 1);
  probe.fillStyle = 'rgb(0 0 0 / 0)';
  probe.fillStyle = value;
  probe.fillRect(0, 0, 1, 1);
  const d = probe.getImageData(0, 0, 1, 1).data;
  return [d[0], d[1], d[2], d[3] / 255];
}
const over = (top, under) => [0, 1, 2].map(i => top[i] * top[3] + under[i] * (1 - top[3]))
  .concat([1]);
function luminance(c) {
  const [r, g, b] = c.slice(0, 3).map(v => v / 255)
    .map(v => v <= 0.04045 ? v / 12.92 : ((v + 0.055) / 1.055) ** 2.4);
  return 0.2126 * r + 0.7152 * g + 0.0722 * b;
}
function behind(el) {
  const layers = [];
  for (let e = el; e; e = e.parentElement) layers.push(rgba(getComputedStyle(e).backgroundColor));
  return layers.reverse().reduce((under, layer) => over(layer, under), [255, 255, 255, 1]);
}
function opacity(el) {
  let o = 1;
  for (let e = el; e; e = e.parentElement) o *= Number(getComputedStyle(e).opacity);
  return o;
}
"""
CONTRAST_JS = (
    COLOUR_JS
    + """
const seen = new Set(), found = [];
const walker = document.createTreeWalker(document.body, NodeFilter.SHOW_TEXT);
for (let node = walker.nextNode(); node; node = walker.nextNode()) {
  const el = node.parentElement;
  if (!node.textContent.trim() || !el || seen.has(el)) continue;
  seen.add(el);
  if (['OPTION', 'SCRIPT', 'STYLE', 'TITLE', 'DATALIST'].includes(el.tagName)) continue;
  if (el.closest(':disabled, [aria-disabled="true"], [hidden]')) continue;
  if (el.getAnimations({subtree: false}).length) continue;
  const box = el.getBoundingClientRect(), style = getComputedStyle(el);
  if (box.width <= 1 || box.height <= 1 || style.visibility !== 'visible') continue;
  const ink = rgba(el instanceof SVGElement ? style.fill : style.color);
  ink[3] *= opacity(el);
  if (!ink[3]) continue;  // transparent: not shown (yet)
  const back = behind(el), front = over(ink, back);
  const [hi, lo] = [luminance(front), luminance(back)].sort((a, b) => b - a);
  const size = parseFloat(style.fontSize), bold = Number(style.fontWeight) >= 700;
  found.push({
    text: node.textContent.trim().slice(0, 40),
    element: el.tagName.toLowerCase() + (el.id ? '#' + el.id : '')
      + [...el.classList].map(c => '.' + c).join(''),
    ratio: Math.round((hi + 0.05) / (lo + 0.05) * 100) / 100,
    needed: size >= 24 || (bold && size >= 18.66) ? 3 : 4.5,
    color: front.slice(0, 3).map(Math.round), background: back.slice(0, 3).map(Math.round),
  });
}
return found;
"""
)


def shrink_png(path: Path) -> Path:
    """Reduce the PNG at `path` to a 256-colour palette when Pillow is installed (screenshots
    kept in the repository stay small); return `path`."""
    try:
        from PIL import Image
    except ImportError:
        return path
    with Image.open(path) as image:
        small = image.convert("RGB").quantize(256, dither=Image.Dither.NONE)
    small.save(path, optimize=True)
    return path


class BrowserMissingError(RuntimeError):
    """Chromium or its driver is not installed where the harness expects them."""


class Browser:
    """One headless Chromium with its own profile and download folder.

    `driver` is the Selenium WebDriver for anything the helpers do not cover.
    """

    def __init__(self, *, width: int = 1280, height: int = 900) -> None:
        for path, package in ((CHROMIUM, "chromium"), (CHROMEDRIVER, "chromium-driver")):
            if not path.exists():
                raise BrowserMissingError(
                    f"{path} is missing: run scripts/test, or apt-get install -y "
                    f"--no-install-recommends {package} (the browser tests need it)"
                )
        # Selenium Manager would download a browser or driver it cannot find: make sure it
        # cannot run at all (it is not needed when both paths are given).
        os.environ["SE_MANAGER_PATH"] = "/nonexistent/selenium-manager"
        os.environ["SE_OFFLINE"] = "true"
        self.home = Path(tempfile.mkdtemp(prefix="ishan-browser-"))
        self.download_dir = self.home / "downloads"
        self.download_dir.mkdir()
        options = webdriver.ChromeOptions()
        options.binary_location = str(CHROMIUM)
        for flag in CHROMIUM_FLAGS:
            options.add_argument(flag)
        options.add_argument(f"--user-data-dir={self.home / 'profile'}")
        options.add_argument(f"--window-size={width},{height}")
        options.add_experimental_option(
            "prefs", {"download.default_directory": str(self.download_dir)}
        )
        options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
        try:
            self.driver: WebDriver = webdriver.Chrome(
                service=Service(str(CHROMEDRIVER)), options=options
            )
        except Exception:
            shutil.rmtree(self.home, ignore_errors=True)
            raise
        self._cdp(
            "Browser.setDownloadBehavior", behavior="allow", downloadPath=str(self.download_dir)
        )
        self.viewport(width, height)

    # ---- driving ----
    def open(self, url: str) -> None:
        """Load `url` and wait until the document has loaded."""
        self.driver.get(url)
        self.wait_for(lambda d: d.execute_script("return document.readyState") == "complete")

    @property
    def url(self) -> str:
        return str(self.driver.current_url)

    def find(self, css: str) -> WebElement:
        return self.driver.find_element("css selector", css)

    def find_all(self, css: str) -> list[WebElement]:
        return list(self.driver.find_elements("css selector", css))

    def js(self, script: str, *args: Any) -> Any:
        """Run `script` in the page (`arguments[i]` are `args`) and return its value."""
        return self.driver.execute_script(script, *args)

    def wait_for(
        self, condition: Callable[[WebDriver], T], timeout: float = 10, message: str = ""
    ) -> T:
        """Poll `condition(driver)` until it returns something truthy, and return that.

        Missing or stale elements count as "not yet"; after `timeout` seconds the test fails
        with `message` and the page's console errors.
        """
        wait = WebDriverWait(
            self.driver,
            timeout,
            poll_frequency=0.05,
            ignored_exceptions=(StaleElementReferenceException,),
        )
        try:
            return wait.until(condition)
        except TimeoutException:
            errors = self.console_errors()
            raise AssertionError(
                f"timed out after {timeout:g} s: {message or condition}"
                + (f"; console errors: {errors}" if errors else "")
            ) from None

    def viewport(self, width: int, height: int, *, mobile: bool = False) -> None:
        """Give the page a `width` x `height` CSS-pixel viewport (`mobile`: a phone's)."""
        self._cdp(
            "Emulation.setDeviceMetricsOverride",
            width=width,
            height=height,
            deviceScaleFactor=1,
            mobile=mobile,
        )

    def color_scheme(self, scheme: str) -> None:
        """Make `prefers-color-scheme` answer `scheme` ("light" or "dark"), as a reader's
        system setting does; it holds for this browser's later pages too."""
        if scheme not in ("light", "dark"):
            raise ValueError(f"color scheme {scheme!r}: light or dark")
        self._cdp(
            "Emulation.setEmulatedMedia",
            media="",
            features=[{"name": "prefers-color-scheme", "value": scheme}],
        )

    # ---- reading what happened ----
    def console_errors(self) -> list[str]:
        """The page's console errors (and failed loads) since the last call."""
        return [
            str(entry["message"])
            for entry in self.driver.get_log("browser")
            if entry["level"] == "SEVERE"
        ]

    def text_contrasts(self) -> list[dict[str, Any]]:
        """Every visible piece of text with its contrast against what is behind it.

        Each is {"text", "element", "ratio", "needed", "color", "background"}: `needed` is
        what WCAG AA asks for that text (4.5, or 3 for large text); colours are [r, g, b].
        """
        found: list[dict[str, Any]] = self.js(CONTRAST_JS)
        return found

    def background_luminance(self) -> float:
        """The WCAG relative luminance (0 black to 1 white) of the page's background."""
        luminance: float = self.js(COLOUR_JS + "return luminance(behind(document.body));")
        return luminance

    def screenshot(self, path: Path, *, full_page: bool = False) -> Path:
        """Save a PNG of the viewport, or of the whole page with `full_page`; return `path`."""
        arguments: dict[str, Any] = {"format": "png"}
        if full_page:
            width, height = self.js(
                "const e = document.documentElement; return [e.scrollWidth, e.scrollHeight]"
            )
            arguments |= {
                "captureBeyondViewport": True,
                "clip": {"x": 0, "y": 0, "width": width, "height": height, "scale": 1},
            }
        shot = self._cdp("Page.captureScreenshot", **arguments)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(base64.b64decode(shot["data"]))
        return path

    def downloaded(self, name: str, timeout: float = 10) -> Path:
        """The file `name` in the download folder, once Chromium has finished writing it."""
        target = self.download_dir / name
        deadline = time.monotonic() + timeout
        while not target.exists() or any(self.download_dir.glob("*.crdownload")):
            if time.monotonic() > deadline:
                found = sorted(p.name for p in self.download_dir.iterdir())
                raise AssertionError(f"{name} was not downloaded (download folder: {found})")
            time.sleep(0.05)
        return target

    # ---- the end ----
    def quit(self) -> None:
        try:
            self.driver.quit()
        finally:
            shutil.rmtree(self.home, ignore_errors=True)

    def __enter__(self) -> Browser:
        return self

    def __exit__(self, *exc: object) -> None:
        self.quit()

    def _cdp(self, command: str, **arguments: Any) -> dict[str, Any]:
        result: dict[str, Any] = self.driver.execute_cdp_cmd(command, arguments)  # type: ignore[attr-defined]
        return result
