"""The chat page of the coordinator, driven in a real headless Chromium.

A coordinator and a worker run as real processes with the real default model (SmolLM2);
each test does what a user does (types, presses Enter or Esc, clicks, reloads) and checks
what the user sees, and the service's own health endpoints behind it.
"""

from __future__ import annotations

import os
import re
import shutil
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from conftest import Cluster, wait_until
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.support.ui import Select
from tests.browser import Browser, shrink_png

KEY = "page-test-key"
COUNTING = "Count from 1 to 1000, separated by commas."
DOCS = Path(__file__).resolve().parents[2] / "docs"


def start(model: Path, *api_key: str) -> Cluster:
    cluster = Cluster(model, list(api_key))
    try:
        cluster.add_worker("w1", *api_key, ctx=2048, threads=1)
    except BaseException:
        cluster.stop()
        raise
    return cluster


@pytest.fixture(scope="module")
def service(smollm2: Path) -> Iterator[Cluster]:
    cluster = start(smollm2)
    yield cluster
    cluster.stop()


@pytest.fixture(scope="module")
def keyed(smollm2: Path) -> Iterator[Cluster]:
    cluster = start(smollm2, "--api-key", KEY)
    yield cluster
    cluster.stop()


def worker_health(cluster: Cluster) -> dict[str, Any]:
    [worker] = httpx.get(f"{cluster.url}/coordinator/health/workers", timeout=5).json()
    health: dict[str, Any] = httpx.get(f"{worker['url']}/worker/health", timeout=5).json()
    return health


class ChatPage:
    """The chat page in one browser, with the reads and waits the tests share."""

    def __init__(self, browser: Browser, url: str) -> None:
        self.browser = browser
        self.url = url

    def open(self) -> None:
        self.browser.open(self.url)
        self.browser.wait_for(
            lambda d: self.browser.find("#workers .worker"), message="the workers panel"
        )

    def set_field(self, css: str, value: str) -> None:
        field = self.browser.find(css)
        field.clear()
        field.send_keys(value)

    def settings(self, max_tokens: int) -> None:
        self.set_field("#max-tokens", str(max_tokens))
        self.set_field("#temperature", "0")

    def send(self, text: str, max_tokens: int = 16) -> None:
        self.settings(max_tokens)
        self.ask(text)

    def ask(self, text: str) -> None:
        prompt = self.browser.find("#prompt")
        prompt.send_keys(text)
        prompt.send_keys(Keys.ENTER)

    def messages(self) -> list[dict[str, Any]]:
        """The conversation as the user reads it."""
        shown: list[dict[str, Any]] = self.browser.js(
            """return [...document.querySelectorAll('#messages .message')].map(li => ({
                role: li.classList.contains('user') ? 'user' : 'assistant',
                text: li.querySelector('.content').innerText.replace(/▍$/, '').trim(),
                stats: [...li.querySelectorAll('.chip')].map(c => c.innerText),
                busy: li.getAttribute('aria-busy') === 'true'}))"""
        )
        return shown

    def last_answer(self) -> dict[str, Any]:
        return self.messages()[-1]

    def wait_for_answer(self, timeout: float = 240) -> dict[str, Any]:
        self.browser.wait_for(
            lambda d: not self.last_answer()["busy"], timeout=timeout, message="the answer"
        )
        return self.last_answer()

    def worker_sessions(self) -> str:
        """The sessions meter of the worker card, as shown ("1 / 100")."""
        return str(self.browser.find(".worker .meter .meter-value").text)

    def chat_titles(self) -> list[str]:
        return [e.text for e in self.browser.find_all("#chat-list .chat-title")]

    def notice(self) -> str:
        return (
            ""
            if not self.browser.find("#notice").is_displayed()
            else self.browser.find("#notice-text").text
        )


@pytest.fixture
def page(browser: Browser, service: Cluster) -> ChatPage:
    chat = ChatPage(browser, f"{service.url}/")
    chat.open()
    return chat


def test_a_message_streams_its_tokens_into_the_page(page: ChatPage, service: Cluster) -> None:
    question = "What is the capital of France? One word."
    page.send(question, max_tokens=24)
    seen: list[str] = []

    def growing(_: Any) -> bool:
        answer = page.last_answer()
        if answer["text"] and (not seen or answer["text"] != seen[-1]):
            seen.append(answer["text"])
        return not answer["busy"]

    page.browser.wait_for(growing, timeout=240, message="the answer to end")
    answer = page.last_answer()
    assert len(seen) >= 2 and seen[0] != answer["text"]  # it came in pieces
    assert all(answer["text"].startswith(piece) for piece in seen[:-1])
    direct = httpx.post(
        f"{service.url}/v1/chat/completions",
        json={"model": "m", "messages": [{"role": "user", "content": question}],
              "max_tokens": 24, "temperature": 0},
        timeout=120,
    ).json()  # fmt: skip
    assert answer["text"] == direct["choices"][0]["message"]["content"].strip()
    assert "Paris" in answer["text"]
    stats = " | ".join(answer["stats"])
    assert re.search(r"first token \d+ ms", stats) and re.search(r"[\d.]+ tok/s", stats)
    assert re.search(r"\d+ tokens \(prompt \d+\)", stats) and "finish: " in stats
    assert "w1 · KV " in stats  # the worker that served it, and the cache it reserved
    assert page.messages()[0] == {
        "role": "user",
        "text": question,
        "stats": [],
        "busy": False,
    }
    assert page.chat_titles()[0] == question
    card = page.browser.find(".worker").text
    assert "w1" in card and "healthy" in card and "breaker closed" in card
    assert "KV cache" in card and "SmolLM2" in page.browser.find("#model").text
    assert page.browser.console_errors() == []


def test_stop_cancels_a_long_answer_and_frees_the_session_on_the_worker(
    page: ChatPage, service: Cluster
) -> None:
    before = worker_health(service)
    page.send(COUNTING, max_tokens=1500)
    page.browser.wait_for(
        lambda d: page.last_answer()["text"] and page.worker_sessions().startswith("1 /"),
        timeout=240,
        message="tokens, and the session on the workers panel",
    )
    page.browser.find("#stop").click()
    answer = page.wait_for_answer(timeout=10)
    assert "stopped" in answer["stats"] and answer["text"]
    page.browser.wait_for(
        lambda d: page.worker_sessions().startswith("0 /"), message="the session freed"
    )
    wait_until(lambda: worker_health(service)["sessions"] == 0, timeout=10)
    after = worker_health(service)
    assert after["cancelled"] == before["cancelled"] + 1
    assert after["completed"] == before["completed"]
    assert page.browser.find("#send").is_enabled()
    assert not page.browser.find("#stop").is_enabled()
    [listed] = httpx.get(f"{service.url}/coordinator/health/workers", timeout=5).json()
    assert (listed["sessions"], listed["kv_used_bytes"]) == (0, 0)
    assert page.browser.console_errors() == []


def test_conversations_survive_a_reload_and_can_be_deleted(page: ChatPage) -> None:
    page.send("Name one colour.", max_tokens=6)
    first = page.wait_for_answer()
    page.browser.find("#new-chat").click()
    assert page.messages() == []
    page.browser.find("#system").send_keys("Answer in one word.")
    page.send("Name one animal.", max_tokens=6)
    second = page.wait_for_answer()

    page.browser.driver.refresh()
    page.open()
    assert page.chat_titles() == ["Name one animal.", "Name one colour."]
    assert [m["text"] for m in page.messages()] == ["Name one animal.", second["text"]]
    assert page.browser.find("#system").get_attribute("value") == "Answer in one word."
    assert any(s.startswith("first token") for s in page.last_answer()["stats"])

    page.browser.find_all("#chat-list .chat-open")[1].click()
    assert [m["text"] for m in page.messages()] == ["Name one colour.", first["text"]]
    assert page.browser.find("#system").get_attribute("value") == ""
    page.browser.find_all("#chat-list .chat-delete")[0].click()
    page.browser.driver.refresh()
    page.open()
    assert page.chat_titles() == ["Name one colour."]
    assert page.browser.console_errors() == []


def test_the_settings_go_into_the_request_the_openai_way(page: ChatPage) -> None:
    page.browser.js(
        """window.sent = [];
        const original = window.fetch;
        window.fetch = (url, options) => {
          if (String(url).includes('chat/completions')) window.sent.push(JSON.parse(options.body));
          return original(url, options);
        };"""
    )
    page.browser.find("#system").send_keys("Answer in JSON.")
    Select(page.browser.find("#format")).select_by_value("json_schema")
    page.set_field("#schema", "{not json")
    page.send("Give me a colour.", max_tokens=12)
    error = page.browser.wait_for(lambda d: page.browser.find("#schema-error").text)
    assert "not valid JSON" in error and page.browser.js("return window.sent") == []
    schema = '{"type": "object", "properties": {"colour": {"type": "string"}}}'
    page.set_field("#schema", schema)
    page.browser.find("#prompt").send_keys(Keys.ENTER)
    page.wait_for_answer()
    [sent] = page.browser.js("return window.sent")
    assert sent["messages"] == [
        {"role": "system", "content": "Answer in JSON."},
        {"role": "user", "content": "Give me a colour."},
    ]
    assert (sent["stream"], sent["temperature"], sent["max_tokens"]) == (True, 0, 12)
    assert sent["response_format"] == {
        "type": "json_schema",
        "json_schema": {
            "name": "answer",
            "schema": {"type": "object", "properties": {"colour": {"type": "string"}}},
            "strict": True,
        },
    }
    assert page.browser.find(".message.assistant:last-child .content p.small").text in (
        "valid JSON",
        "not valid JSON",
    )
    Select(page.browser.find("#format")).select_by_value("json_object")
    page.send("Another colour.", max_tokens=4)
    page.wait_for_answer()
    assert page.browser.js("return window.sent")[-1]["response_format"] == {"type": "json_object"}


def test_model_output_is_shown_as_text_never_as_html(page: ChatPage) -> None:
    rendered = page.browser.driver.execute_async_script(
        """const done = arguments[arguments.length - 1];
        import('/static/markdown.js').then(({render}) => {
          const box = document.createElement('div');
          box.append(render('**Bold** and `<b>code</b>`\\n<img src=x onerror="window.hit=1">' +
                            '\\n\\n- one\\n- two\\n\\n```js\\nalert(1)\\n'));
          done({html: box.innerHTML, text: box.innerText, hit: window.hit || 0});
        });"""
    )
    assert "<img" not in rendered["html"] and "&lt;img" in rendered["html"]
    assert "<strong>Bold</strong>" in rendered["html"]
    assert "<code>&lt;b&gt;code&lt;/b&gt;</code>" in rendered["html"]
    assert "<ul><li>one</li><li>two</li></ul>" in rendered["html"]
    assert '<pre data-lang="js"><code>alert(1)</code></pre>' in rendered["html"]
    time.sleep(0.2)
    assert page.browser.js("return window.hit || 0") == 0


def test_keyboard_only_and_phone_width(page: ChatPage, service: Cluster) -> None:
    browser = page.browser
    page.settings(max_tokens=1500)
    browser.find("#prompt").click()
    browser.viewport(390, 800, mobile=True)
    assert browser.js("return document.activeElement.id") == "prompt"
    prompt = browser.find("#prompt")
    prompt.send_keys("first line")
    prompt.send_keys(Keys.SHIFT, Keys.ENTER)
    prompt.send_keys("second line")
    assert prompt.get_attribute("value") == "first line\nsecond line"
    prompt.clear()
    page.ask(COUNTING)
    browser.wait_for(lambda d: page.last_answer()["text"], timeout=240, message="tokens")
    browser.find("#prompt").send_keys(Keys.ESCAPE)
    assert "stopped" in page.wait_for_answer(timeout=10)["stats"]
    wait_until(lambda: worker_health(service)["sessions"] == 0, timeout=10)

    # one column, nothing wider than the phone, the panels open as drawers
    assert browser.js("return document.documentElement.scrollWidth") <= 390
    assert not browser.find("#side").is_displayed()
    browser.find("#toggle-side").click()
    assert browser.find("#side").is_displayed()
    assert browser.find("#toggle-side").get_attribute("aria-expanded") == "true"
    assert browser.find(".worker").is_displayed()
    browser.driver.switch_to.active_element.send_keys(Keys.ESCAPE)
    assert not browser.find("#side").is_displayed()
    assert browser.js("return document.activeElement.id") == "toggle-side"
    assert browser.js("return document.documentElement.scrollWidth") <= 390

    unlabelled = browser.js(
        """return [...document.querySelectorAll('input, textarea, select, button')]
            .filter(e => !e.closest('[hidden]') && !(e.labels && e.labels.length)
                         && !e.getAttribute('aria-label') && !e.innerText.trim())
            .map(e => e.id || e.outerHTML)"""
    )
    assert unlabelled == []
    assert browser.console_errors() == []


def test_with_an_api_key_the_page_asks_for_it_then_chats(browser: Browser, keyed: Cluster) -> None:
    page = ChatPage(browser, f"{keyed.url}/")
    page.open()
    notice = browser.wait_for(lambda d: page.notice(), message="the key notice")
    assert "needs an API key" in notice
    page.send("Hello!", max_tokens=4)
    answer = page.wait_for_answer(timeout=30)
    assert "Error 401" in answer["text"] and "API key" in answer["text"]
    assert browser.find("#send").is_enabled()

    browser.find("#notice-action").click()
    assert browser.js("return document.activeElement.id") == "api-key"
    browser.find("#api-key").send_keys("wrong-key", Keys.ENTER)
    browser.wait_for(lambda d: "refused the API key" in page.notice(), message="refused")
    browser.find("#api-key").send_keys(KEY, Keys.ENTER)
    browser.wait_for(lambda d: "accepted" in browser.find("#key-status").text, message="ok")
    assert page.notice() == ""
    page.send("What is the capital of France?", max_tokens=12)
    answer = page.wait_for_answer()
    assert answer["text"] and "Error" not in answer["text"]
    assert browser.js("return localStorage.getItem('ishan-infer/api-key')") == KEY
    assert KEY not in browser.js("return localStorage.getItem('ishan-infer/conversations')")
    errors = browser.console_errors()
    assert errors and all("401" in e for e in errors)  # the refused calls, nothing else


def test_the_page_and_its_assets_are_public_and_self_contained(keyed: Cluster) -> None:
    page = httpx.get(f"{keyed.url}/", timeout=5)
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assets = re.findall(r'(?:src|href)="([^"#]+)"', page.text)
    assert sorted(assets) == ["static/chat.css", "static/chat.js", "static/icon.svg"]
    for asset in [*assets, "static/markdown.js", "static/service.js", "static/stream.js"]:
        response = httpx.get(f"{keyed.url}/{asset}", timeout=5)
        assert response.status_code == 200, asset
        text = response.text.replace("http://www.w3.org/2000/svg", "")  # a name, not a load
        assert not re.search(r"https?://|//[a-z]", text), asset  # nothing from elsewhere
    assert httpx.head(f"{keyed.url}/", timeout=5).status_code == 200
    models = httpx.get(f"{keyed.url}/v1/models", timeout=5)
    assert models.status_code == 401


def test_light_and_dark_follow_the_system_and_the_readme_screenshots(
    browser: Browser, service: Cluster, tmp_path: Path
) -> None:
    """A streaming answer under a light and a dark system setting: the page follows it, and
    every text a reader sees (messages, stats, the worker card, settings) passes WCAG AA.
    ISHAN_SCREENSHOTS=1 writes the two docs/infer-chat-{light,dark}.png."""
    page = ChatPage(browser, f"{service.url}/")
    browser.viewport(1280, 760)
    page.open()
    page.send("What is the capital of France? One word.", max_tokens=24)
    page.wait_for_answer()
    page.send("Write a short story about a lighthouse keeper.", max_tokens=400)
    browser.wait_for(
        lambda d: len(page.last_answer()["text"]) > 200 and page.worker_sessions()[0] == "1",
        timeout=240,
        message="a running stream",
    )
    shots, background = [], {}
    for scheme in ("light", "dark"):
        browser.color_scheme(scheme)
        background[scheme] = browser.background_luminance()
        texts = browser.text_contrasts()
        shown = {t["element"] for t in texts}
        assert {"p.who", "span.chip", "span.badge.breaker-closed", "p#service-status.pill"} <= shown
        low = [t for t in texts if t["ratio"] < t["needed"]]
        assert low == [], f"{scheme}: text below WCAG AA contrast: {low}"
        shots.append(browser.screenshot(tmp_path / f"infer-chat-{scheme}.png"))
    if browser.find("#stop").is_enabled():
        browser.find("#stop").click()
    page.wait_for_answer(timeout=10)
    assert background["light"] > 0.8 and background["dark"] < 0.02, background
    assert browser.console_errors() == []
    if os.environ.get("ISHAN_SCREENSHOTS"):
        for shot in shots:
            shutil.copyfile(shrink_png(shot), DOCS / shot.name)


def test_the_wheel_carries_every_file_of_the_page() -> None:
    """What `pip install` gets: the page and all its assets (the page loads nothing else)."""
    from hatchling.builders.wheel import WheelBuilder

    root = Path(__file__).resolve().parents[2]
    shipped = {f.distribution_path for f in WheelBuilder(str(root)).recurse_included_files()}
    static = root / "src" / "ishan_tools" / "infer" / "coordinator" / "static"
    page = {f"ishan_tools/infer/coordinator/static/{p.name}" for p in static.iterdir()}
    assert {"index.html", "chat.js", "chat.css"} <= {p.rsplit("/", 1)[1] for p in page}
    assert page <= shipped
