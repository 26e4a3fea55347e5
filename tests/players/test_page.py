"""The scouting page of `ishan players serve`, driven in a real headless Chromium.

Each test does what a user does (types, drags with the keyboard, clicks, reloads, goes back)
and checks what the user sees against the library, the API and the CLI.
"""

from __future__ import annotations

import json
import os
import shlex
import shutil
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from selenium.webdriver.common.action_chains import ActionChains
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.support.ui import Select
from typer.testing import CliRunner

from ishan_tools.cli import app as cli_app
from ishan_tools.players import Filters, Index, Profile
from ishan_tools.players.data import ATTRIBUTES
from ishan_tools.players.export import explanation
from tests.harness.browser import Browser, shrink_png

from .conftest import EXAMPLE_RATINGS

KANTE = 215914
DOCS = Path(__file__).resolve().parents[2] / "docs" / "players"
MINUS, DASH = "\N{MINUS SIGN}", "\N{EN DASH}"  # the page's typography


class Page:
    """The scouting page in one browser, with the reads and waits the tests share."""

    def __init__(self, browser: Browser, base_url: str) -> None:
        self.browser = browser
        self.base_url = base_url.rstrip("/")

    def open(self, query: str = "") -> None:
        self.browser.open(f"{self.base_url}/{query}")
        self.wait_for_results(0)

    def generation(self) -> int:
        return int(self.browser.find("#results").get_attribute("data-generation") or 0)

    def wait_for_results(self, after: int) -> None:
        """Wait until results newer than generation `after` are on screen."""
        self.browser.wait_for(
            lambda d: (
                self.generation() > after
                and self.browser.find("#results").get_attribute("aria-busy") is None
            ),
            message=f"results after generation {after}",
        )

    def changing(self, action: Any) -> None:
        """Do `action()` and wait for the results it causes."""
        before = self.generation()
        action()
        self.wait_for_results(before)

    def rows(self) -> list[dict[str, Any]]:
        """The result table as a user reads it, one dict per row."""
        rows: list[dict[str, Any]] = self.browser.js(
            """return [...document.querySelectorAll('#results tbody tr')].map(tr => {
                const cells = [...tr.children].map(td => td.innerText.trim());
                return {id: Number(tr.dataset.id), rank: cells[0],
                        name: tr.querySelector('.player').innerText,
                        why: tr.querySelector('.why').innerText,
                        club: tr.querySelector('.club').firstChild.textContent,
                        league: tr.querySelector('.sub').innerText,
                        nation: cells[3], age: Number(cells[4]), overall: Number(cells[5]),
                        value: cells[6], positions: cells[7],
                        ratings: cells.slice(8, 14).map(Number), score: cells[14],
                        selected: tr.getAttribute('aria-selected') === 'true'};
            })"""
        )
        return rows

    def ids(self) -> list[int]:
        return [row["id"] for row in self.rows()]

    def params(self) -> dict[str, list[str]]:
        return parse_qs(urlsplit(self.browser.url).query)

    def command_line(self) -> list[str]:
        """The page's "same query on the command line", split as a shell would."""
        text = self.browser.js("return document.querySelector('#cli').textContent")
        args = shlex.split(str(text))
        assert args[:2] == ["ishan", "players"]
        return args[2:]

    def slider_value(self, attribute: str) -> str:
        return str(self.browser.find(f"#o-{attribute}").text)


@pytest.fixture
def page(browser: Browser, api: httpx.Client) -> Page:
    page = Page(browser, str(api.base_url))
    page.open()
    return page


def similar_ids(api: httpx.Client, **body: Any) -> list[int]:
    answer = api.post("/players/similar", json={"top": 10, **body})
    assert answer.status_code == 200, answer.text
    return [match["sofifa_id"] for match in answer.json()["matches"]]


def test_the_page_opens_on_a_profile_with_explained_results_offline(
    page: Page, index: Index
) -> None:
    expected = index.similar(Profile("midfielder", EXAMPLE_RATINGS), top=10)
    rows = page.rows()
    assert [row["id"] for row in rows] == [m.player["sofifa_id"] for m in expected]
    first, match = rows[0], expected[0]
    assert first["rank"] == "1" and first["name"] == match.player["short_name"] == "E. Buendía"
    assert (first["club"], first["league"]) == ("Aston Villa", "English Premier League")
    assert (first["nation"], first["age"], first["overall"]) == ("Argentina", 24, 79)
    assert (first["value"], first["positions"]) == ("€26.5M", "RM")
    assert first["ratings"] == [match.player[name] for name in ATTRIBUTES]
    assert [row["score"] for row in rows] == [f"{m.score:.4f}" for m in expected]
    for row, match in zip(rows, expected, strict=True):
        explained = explanation(match, Profile("midfielder", EXAMPLE_RATINGS)).replace("-", MINUS)
        assert row["why"].split() == explained.replace(",", "").split()
    browser = page.browser
    assert [page.slider_value(name) for name in ATTRIBUTES] == [
        str(v) for v in EXAMPLE_RATINGS.values()
    ]
    assert "17,107 outfield players" in browser.find("#dataset").text
    # offline: every request went to the page's own server, and nothing failed
    loaded = browser.js("return performance.getEntriesByType('resource').map(e => e.name)")
    assert loaded and all(url.startswith(page.base_url) for url in loaded), loaded
    assert browser.console_errors() == []


def test_search_a_player_by_keyboard_ignoring_accents_and_case(
    page: Page, api: httpx.Client
) -> None:
    browser = page.browser
    browser.find("body").send_keys("/")
    search = browser.driver.switch_to.active_element
    assert search.get_attribute("id") == "search"
    search.send_keys("KANTE")
    browser.wait_for(
        lambda d: len(browser.find_all("#suggestions [role=option]")) == 3, message="3 Kantés"
    )
    names = [
        o.find_element("css selector", ".player").text
        for o in browser.find_all("#suggestions [role=option]")
    ]
    assert names == ["N. Kanté", "O. Kanté", "A. Kanté"]
    assert "CDM, CM · Chelsea · 30" in browser.find("#suggestion-0").text
    page.changing(lambda: search.send_keys(Keys.ARROW_DOWN, Keys.ENTER))
    assert page.params()["like"] == [str(KANTE)]
    assert page.ids() == similar_ids(api, like=KANTE)
    assert KANTE not in page.ids()
    browser.wait_for(lambda d: browser.find("#results-title").text == "Most like N. Kanté")
    assert browser.find("#like").is_displayed() and "N. Kanté" in browser.find("#like").text
    kante = api.get(f"/players/{KANTE}").json()
    assert [page.slider_value(name) for name in ATTRIBUTES] == [str(kante[n]) for n in ATTRIBUTES]
    assert browser.find("#suggestions").is_displayed() is False
    assert browser.console_errors() == []


def test_sliders_move_ratings_leave_out_and_weights(page: Page, api: httpx.Client) -> None:
    browser = page.browser
    pace = browser.find("#r-pace")
    for _ in range(5):
        page.changing(lambda: pace.send_keys(Keys.ARROW_RIGHT))
    assert page.slider_value("pace") == "80" and page.params()["pace"] == ["80"]
    profile = {"position": "midfielder", **EXAMPLE_RATINGS, "pace": 80}
    assert page.ids() == similar_ids(api, **profile)
    page.changing(lambda: browser.find("#use-shooting").click())
    del profile["shooting"]
    assert page.slider_value("shooting") == DASH and "shooting" not in page.params()
    assert page.ids() == similar_ids(api, **profile)
    weight = browser.find("#w-pace")
    weight.clear()
    page.changing(lambda: weight.send_keys("3"))
    browser.wait_for(lambda d: page.params().get("w.pace") == ["3"], message="w.pace in the URL")
    assert page.ids() == similar_ids(api, **profile, weights={"pace": 3})
    page.changing(lambda: Select(browser.find("#position")).select_by_value("attacker"))
    assert page.ids() == similar_ids(
        api, **{**profile, "position": "attacker"}, weights={"pace": 3}
    )
    assert browser.console_errors() == []


def test_filters_narrow_the_table(page: Page, api: httpx.Client, index: Index) -> None:
    browser = page.browser
    for field, text in (("#min_age", "20"), ("#max_age", "24"), ("#max_value", "40")):
        page.changing(lambda field=field, text=text: browser.find(field).send_keys(text))
    page.changing(lambda: Select(browser.find("#foot")).select_by_value("left"))
    page.changing(lambda: browser.find('#plays button[data-code="CAM"]').click())
    page.changing(lambda: browser.find('#plays button[data-code="LM"]').click())
    page.changing(lambda: browser.find("#league-input").send_keys("premier league", Keys.ENTER))
    page.changing(lambda: Select(browser.find("#top")).select_by_value("20"))
    rows = page.rows()
    for row in rows:
        assert 20 <= row["age"] <= 24 and "Premier League" in row["league"]
        assert {"CAM", "LM"} & set(row["positions"].split(", "))
    filters = Filters(
        min_age=20, max_age=24, max_value=40e6, foot="left", plays=("CAM", "LM"),
        leagues=("premier league",),
    )  # fmt: skip
    expected = index.similar(Profile("midfielder", EXAMPLE_RATINGS), top=20, filters=filters)
    assert len(expected) > 10  # fewer than 20 pass every filter
    assert [row["id"] for row in rows] == [m.player["sofifa_id"] for m in expected]
    assert browser.find(".chips-field[data-list=league] .chips").text.startswith("premier league")
    # an unknown club says so, and removing it brings the table back
    page.changing(lambda: browser.find("#club-input").send_keys("Nowhere FC", Keys.ENTER))
    assert "no club" in browser.find("#message").text and page.rows() == []
    page.changing(lambda: browser.find('button[aria-label="remove Nowhere FC"]').click())
    assert page.ids() == [row["id"] for row in rows] and not browser.find("#message").is_displayed()
    # the role rule is chosen per query
    page.changing(lambda: Select(browser.find("#role_from")).select_by_value("majority"))
    body = {"position": "midfielder", **EXAMPLE_RATINGS, "top": 20, "min_age": 20, "max_age": 24}
    body |= {
        "max_value": 40e6,
        "foot": "left",
        "plays": ["CAM", "LM"],
        "league": ["premier league"],
    }
    assert page.ids() == similar_ids(api, **body, role_from="majority")
    assert page.params()["role_from"] == ["majority"]


def test_a_selected_player_opens_a_radar_of_percentiles_and_his_card(
    page: Page, api: httpx.Client
) -> None:
    browser = page.browser
    second = page.rows()[1]
    page.changing(lambda: browser.find(f'#results tr[data-id="{second["id"]}"]').click())
    browser.wait_for(
        lambda d: browser.find("#detail").get_attribute("data-player") == str(second["id"])
    )
    assert page.params()["sel"] == [str(second["id"])] and page.rows()[1]["selected"]
    ranks = api.get(f"/players/{second['id']}/percentiles", params=EXAMPLE_RATINGS).json()
    polygons = browser.find_all("#radar polygon")
    assert len(polygons) == 2
    player_dots = browser.find_all("#radar .series.player .vertex")
    profile_dots = browser.find_all("#radar .series.profile .vertex")
    assert len(player_dots) == len(profile_dots) == 6
    assert [dot.get_attribute("data-value") for dot in player_dots] == [
        str(ranks["player"][name]["value"]) for name in ATTRIBUTES
    ]
    # vertices sit at the percentile's distance from the centre (radius 140 = 100th)
    for dot, name in zip(player_dots, ATTRIBUTES, strict=True):
        x, y = (float(dot.get_attribute(a) or 0) for a in ("cx", "cy"))
        assert (x * x + y * y) ** 0.5 == pytest.approx(1.4 * ranks["player"][name]["percentile"])
    ActionChains(browser.driver).move_to_element(player_dots[2]).perform()
    tip = browser.wait_for(lambda d: browser.find("#tip").is_displayed() and browser.find("#tip"))
    passing = ranks["player"]["passing"]
    assert "Passing" in tip.text and f"{second['name']} {passing['value']}" in tip.text
    assert f"profile {EXAMPLE_RATINGS['passing']}" in tip.text
    assert f"{round(passing['percentile'])}" in tip.text
    card = browser.find("#card").text
    player = api.get(f"/players/{second['id']}").json()
    for key in ("long_name", "club_name", "league_name", "work_rate"):
        assert player[key] in card
    assert f"among {ranks['group_size']:,} midfielders" in browser.find("#detail-group").text
    # by keyboard: the next row, Enter
    third = page.rows()[2]
    row = browser.find(f'#results tr[data-id="{second["id"]}"]')
    row.send_keys(Keys.ARROW_DOWN)
    page.changing(lambda: browser.driver.switch_to.active_element.send_keys(Keys.ENTER))
    browser.wait_for(
        lambda d: browser.find("#detail").get_attribute("data-player") == str(third["id"])
    )
    assert browser.find("#detail-title").text == third["name"]
    # "find players like him" starts a new search from the card
    page.changing(lambda: browser.find("#like-this").click())
    assert page.params()["like"] == [str(third["id"])]
    assert page.ids() == similar_ids(api, like=third["id"])
    assert browser.console_errors() == []


def test_a_shared_url_reloads_the_same_page_and_back_undoes(page: Page, api: httpx.Client) -> None:
    browser = page.browser
    page.changing(lambda: browser.find("#use-physic").click())
    page.changing(lambda: browser.find("#max_age").send_keys("27"))
    page.changing(lambda: browser.find('#plays button[data-code="CM"]').click())
    page.changing(lambda: Select(browser.find("#role_from")).select_by_value("majority"))
    chosen = page.rows()[3]["id"]
    page.changing(lambda: browser.find(f'#results tr[data-id="{chosen}"]').click())
    browser.wait_for(lambda d: browser.find("#detail").get_attribute("data-player") == str(chosen))
    shared, rows = browser.url, page.rows()
    with Browser(width=1280, height=900) as other:
        reader = Page(other, page.base_url)
        reader.open(shared.removeprefix(page.base_url + "/"))
        assert reader.rows() == rows
        other.wait_for(lambda d: other.find("#detail").get_attribute("data-player") == str(chosen))
        assert len(other.find_all("#radar .series.player .vertex")) == 6
        assert len(other.find_all("#radar .series.profile .vertex")) == 5  # physic left out
        assert other.find("#max_age").get_attribute("value") == "27"
        assert other.find("#use-physic").is_selected() is False
        assert other.find('#plays button[data-code="CM"]').get_attribute("aria-pressed") == "true"
        assert Select(other.find("#role_from")).first_selected_option.text == "most positions"
        assert other.console_errors() == []
    # back: the radar closes, then the role rule returns to "first"
    page.changing(browser.driver.back)
    assert "sel" not in page.params() and not browser.find("#detail").is_displayed()
    page.changing(browser.driver.back)
    assert "role_from" not in page.params()
    assert Select(browser.find("#role_from")).first_selected_option.text == "first position"
    profile = {"position": "midfielder", **EXAMPLE_RATINGS, "max_age": 27, "plays": ["CM"]}
    del profile["physic"]
    assert page.ids() == similar_ids(api, **profile)
    page.changing(browser.driver.forward)
    assert page.params()["role_from"] == ["majority"]


@pytest.mark.parametrize(
    "query",
    [
        "?position=CM&pace=75&shooting=72&passing=85&dribbling=80&defending=65&physic=70",
        "?position=ST&pace=92&shooting=88&w.pace=2&min_age=19&max_age=23&foot=left"
        "&league=Premier&league=Liga&max_value=60000000&top=20",
        f"?like={KANTE}&role_from=majority&nationality=france&min_overall=70&w.role=0.5",
        "?position=defender&defending=85&physic=80&pace=70&plays=LB&plays=LWB&club=a",
    ],
)
def test_the_page_and_the_cli_agree(page: Page, query: str) -> None:
    page.open(query)
    rows = page.rows()
    assert rows, "the page shows no players"
    args = page.command_line()
    done = CliRunner().invoke(cli_app, ["players", *args, "--json"])
    assert done.exit_code == 0, done.output
    cli = json.loads(done.stdout)
    assert [row["id"] for row in rows] == [m["sofifa_id"] for m in cli]
    assert [row["score"] for row in rows] == [f"{m['score']:.4f}" for m in cli]
    assert [row["name"] for row in rows] == [m["short_name"] for m in cli]


def test_the_csv_download_is_what_the_cli_prints(page: Page) -> None:
    browser = page.browser
    page.changing(lambda: browser.find("#max_age").send_keys("23"))
    browser.find("#download").click()
    downloaded = browser.downloaded("ishan-players.csv").read_text(encoding="utf-8")
    done = CliRunner().invoke(cli_app, ["players", *page.command_line(), "--csv"])
    assert done.exit_code == 0 and downloaded == done.stdout
    assert len(downloaded.splitlines()) == 11 and downloaded.startswith("rank,sofifa_id,")


def test_readable_and_usable_at_phone_width(page: Page, api: httpx.Client) -> None:
    browser = page.browser
    browser.viewport(390, 844, mobile=True)
    page.open()
    width = browser.js("return document.documentElement.scrollWidth")
    assert width <= 390, f"the page is {width} px wide on a 390 px phone"
    wrap = browser.js(
        "const w = document.querySelector('.table-wrap'); return [w.scrollWidth, w.clientWidth]"
    )
    assert wrap[0] > wrap[1]  # the table scrolls inside its box
    assert browser.find("#search").size["width"] > 300
    browser.find("#r-dribbling").send_keys(Keys.END)
    page.changing(lambda: browser.find("#r-dribbling").send_keys(Keys.ARROW_LEFT))
    assert page.slider_value("dribbling") == "98"
    assert page.ids() == similar_ids(
        api, position="midfielder", **{**EXAMPLE_RATINGS, "dribbling": 98}
    )
    first = browser.find("#results tbody tr")
    page.changing(first.click)
    browser.wait_for(lambda d: browser.find("#detail").is_displayed())
    radar = browser.find("#radar").size
    assert 300 <= radar["width"] <= 390
    assert browser.js("return document.documentElement.scrollWidth") <= 390


def test_a_long_slider_drag_is_one_history_entry(page: Page, api: httpx.Client) -> None:
    """400 `input` events, as a drag of several seconds makes, then the release."""
    browser = page.browser
    page.changing(
        lambda: browser.js(
            """const slider = document.querySelector('#r-physic');
            for (let i = 0; i < 400; i++) {
              slider.value = 40 + (i % 50);
              slider.dispatchEvent(new Event('input', {bubbles: true}));
            }
            slider.value = 91;
            slider.dispatchEvent(new Event('input', {bubbles: true}));
            slider.dispatchEvent(new Event('change', {bubbles: true}));"""
        )
    )
    assert page.params()["physic"] == ["91"] and page.slider_value("physic") == "91"
    assert page.ids() == similar_ids(
        api, position="midfielder", **{**EXAMPLE_RATINGS, "physic": 91}
    )
    page.changing(browser.driver.back)
    assert "position" not in page.params() and page.slider_value("physic") == "70"
    assert browser.console_errors() == []


def test_light_and_dark_follow_the_system_and_every_text_is_readable(
    browser: Browser, api: httpx.Client, tmp_path: Path
) -> None:
    """The page under a light and a dark system setting: the page follows it, and every text
    a reader sees (table, radar labels, card, the radar's tooltip) passes WCAG AA.
    ISHAN_SCREENSHOTS=1 writes the two docs/players/players-page-{light,dark}.png."""
    page = Page(browser, str(api.base_url))
    browser.viewport(1440, 1000)
    page.open("?like=251854&max_age=24&sel=232411")  # players like Pedri, Nkunku's radar open
    browser.wait_for(lambda d: browser.find("#detail").get_attribute("data-player"))
    assert browser.find("#results-title").text == "Most like Pedri"
    background = {}
    for scheme in ("light", "dark"):
        browser.color_scheme(scheme)
        background[scheme] = browser.background_luminance()
        vertex = "document.querySelector('#radar .series.player .vertex')"
        browser.js(f"{vertex}.dispatchEvent(new Event('focus'))")
        texts = browser.text_contrasts()
        browser.js(f"{vertex}.dispatchEvent(new Event('blur'))")
        shown = {t["element"].split(".")[0] + ":" + t["text"] for t in texts}
        assert {"h2#results-title:Most like Pedri", "text:Dribbling", "text:85 · 100th"} <= shown
        assert any(t["element"] == "strong" and t["text"] == "Pace" for t in texts)  # the tip
        low = [t for t in texts if t["ratio"] < t["needed"]]
        assert low == [], f"{scheme}: text below WCAG AA contrast: {low}"
        shot = browser.screenshot(tmp_path / f"players-page-{scheme}.png", full_page=True)
        if os.environ.get("ISHAN_SCREENSHOTS"):
            shutil.copyfile(shrink_png(shot), DOCS / shot.name)
    assert background["light"] > 0.8 and background["dark"] < 0.02, background
    assert browser.console_errors() == []
