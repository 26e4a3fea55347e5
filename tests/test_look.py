"""One look for the docs site and the two web pages: the same colours, fonts and scales.

The scouting page (players/static/app.css) and the chat page (infer/coordinator/static/
chat.css) each carry the same block of tokens, light by default and dark under
`prefers-color-scheme: dark`; the docs site (docs/stylesheets/ishan.css) gives Material the
same colours for its "default" and "slate" schemes. These tests keep the three in step and
check that every text colour is readable (WCAG AA) on every surface in both themes; the pages'
browser tests check the rendered pages themselves.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PAGES = {
    "players": ROOT / "src" / "ishan_tools" / "players" / "static" / "app.css",
    "infer": ROOT / "src" / "ishan_tools" / "infer" / "coordinator" / "static" / "chat.css",
}
DOCS_CSS = ROOT / "docs" / "stylesheets" / "ishan.css"
BEGIN, END = (
    "/* ==== ishan look: the shared tokens ====",
    "/* ==== end of the shared tokens ==== */",
)
TEXT = ("--text", "--muted", "--accent", "--ok", "--warn", "--bad")
SURFACES = ("--bg", "--panel", "--raised")
FILLS = ("--accent", "--ok", "--warn", "--bad")  # drawn under --on-fill text (buttons)


def token_block(css: Path) -> str:
    text = css.read_text(encoding="utf-8")
    assert text.count(BEGIN) == 1 and text.count(END) == 1, f"{css.name}: no token block"
    return text[text.index(BEGIN) : text.index(END) + len(END)]


def declarations(rule_body: str) -> dict[str, str]:
    """The custom properties set in one rule's body, by name."""
    return {
        name: value.strip() for name, value in re.findall(r"(--[\w-]+)\s*:\s*([^;]+);", rule_body)
    }


def rule(css: str, selector: str) -> dict[str, str]:
    """The custom properties of the first rule whose selector is exactly `selector`."""
    found = re.search(re.escape(selector) + r"\s*\{([^{}]*)\}", css)
    assert found, f"no rule for {selector}"
    return declarations(found.group(1))


def themes(block: str) -> dict[str, dict[str, str]]:
    """A page's light tokens (`:root`) and its dark ones (`:root` in the dark media query)."""
    light = rule(block, ":root")
    dark_query = block[block.index("@media (prefers-color-scheme: dark)") :]
    return {"light": light, "dark": {**light, **rule(dark_query, ":root")}}


def luminance(hex_colour: str) -> float:
    channels = [int(hex_colour[i : i + 2], 16) / 255 for i in (1, 3, 5)]
    linear = [c / 12.92 if c <= 0.04045 else ((c + 0.055) / 1.055) ** 2.4 for c in channels]
    return 0.2126 * linear[0] + 0.7152 * linear[1] + 0.0722 * linear[2]


def contrast(a: str, b: str) -> float:
    high, low = sorted((luminance(a), luminance(b)), reverse=True)
    return (high + 0.05) / (low + 0.05)


def test_both_pages_carry_the_same_token_block() -> None:
    players, infer = (token_block(css) for css in PAGES.values())
    assert players == infer, "the shared token blocks of app.css and chat.css differ"
    tokens = themes(players)
    for name in ("--font", "--mono", "--text-md", "--space-4", "--radius-m", "--accent-soft"):
        assert name in tokens["light"], name
    assert "system-ui" in tokens["light"]["--font"]  # system fonts: nothing is downloaded
    for css in PAGES.values():
        assert not re.search(r"@import|@font-face|url\(", css.read_text(encoding="utf-8"))


@pytest.mark.parametrize("theme", ["light", "dark"])
def test_every_text_colour_is_readable_on_every_surface(theme: str) -> None:
    tokens = themes(token_block(PAGES["players"]))[theme]
    low = [
        f"{ink} on {ground}: {contrast(tokens[ink], tokens[ground]):.2f}"
        for ink in TEXT
        for ground in SURFACES
        if contrast(tokens[ink], tokens[ground]) < 4.5
    ] + [
        f"--on-fill on {fill}: {contrast(tokens['--on-fill'], tokens[fill]):.2f}"
        for fill in FILLS
        if contrast(tokens["--on-fill"], tokens[fill]) < 4.5
    ]
    assert low == [], f"{theme}: below WCAG AA (4.5:1): {low}"


def test_the_themes_are_light_and_dark() -> None:
    tokens = themes(token_block(PAGES["players"]))
    assert luminance(tokens["light"]["--bg"]) > 0.8 > 0.02 > luminance(tokens["dark"]["--bg"])
    assert tokens["light"]["--accent"] != tokens["dark"]["--accent"]


def test_the_docs_site_uses_the_pages_colours() -> None:
    css = DOCS_CSS.read_text(encoding="utf-8")
    page = themes(token_block(PAGES["players"]))
    for theme, scheme in (("light", "default"), ("dark", "slate")):
        docs = rule(css, f'[data-md-color-scheme="{scheme}"]')
        colours = {k: v for k, v in page[theme].items() if re.fullmatch(r"#[0-9a-f]{6}", v)}
        assert docs == colours, f"docs {scheme} differs from the pages' {theme} theme"
    both = rule(css, '[data-md-color-scheme="default"],\n[data-md-color-scheme="slate"]')
    assert both["--md-primary-fg-color"] == both["--md-accent-fg-color"] == "var(--accent)"
    assert both["--md-default-bg-color"] == "var(--panel)"
    assert both["--md-typeset-color"] == both["--md-default-fg-color"] == "var(--text)"
    fonts = rule(css, ":root")
    assert fonts["--md-text-font"] in page["light"]["--font"]  # the stack, less its fallback
    assert not re.search(r"@import|@font-face|url\(", css)
