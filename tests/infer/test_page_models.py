"""The chat page's model picker, in a real headless Chromium, with two real models.

A coordinator starts with one SmolLM2 worker (no picker: one model), then a worker of the
tiny GGUF reports under another name; the picker appears, and each message goes to the
workers of the model chosen in it.
"""

from __future__ import annotations

from pathlib import Path

from selenium.webdriver.support.ui import Select

from tests.harness.browser import Browser

from .conftest import Cluster
from .test_page import ChatPage

SMOL = "SmolLM2-135M-Instruct.Q4_1"  # the default model's name: its file's stem


def shown_options(page: ChatPage) -> list[str]:
    """The picker's options as the user reads them, once the picker is shown."""
    picker = page.browser.find("#model-picker")
    return sorted(o.text for o in Select(picker).options) if picker.is_displayed() else []


def test_the_model_picker_appears_with_a_second_model_and_routes_by_it(
    browser: Browser, smollm2: Path, tiny_model: Path
) -> None:
    cluster = Cluster(smollm2)
    try:
        cluster.add_worker("w-smol", ctx=512)
        page = ChatPage(browser, f"{cluster.url}/")
        page.open()
        page.browser.wait_for(
            lambda d: page.browser.find("#model-picker option"), message="the models loaded"
        )
        assert not page.browser.find("#model-picker").is_displayed()  # one model: no picker
        page.send("A question for the only model.", max_tokens=4)
        assert "w-smol · KV " in " | ".join(page.wait_for_answer()["stats"])

        cluster.add_worker("w-tiny", "--model-name", "tiny", ctx=512, model=tiny_model)
        expected = [f"{SMOL} (1 live worker)", "tiny (1 live worker)"]
        page.browser.wait_for(
            lambda d: shown_options(page) == expected, message="the picker with both models"
        )
        cards = {
            e.get_attribute("data-worker-id"): e.text for e in page.browser.find_all(".worker")
        }
        assert "model tiny · heartbeat" in cards["w-tiny"]
        assert f"model {SMOL} · heartbeat" in cards["w-smol"]
        for name, worker in (("tiny", "w-tiny"), (SMOL, "w-smol"), ("tiny", "w-tiny")):
            Select(page.browser.find("#model-picker")).select_by_value(name)
            page.send(f"A question for {name}.", max_tokens=4)
            answer = page.wait_for_answer()
            assert f"{worker} · KV " in " | ".join(answer["stats"])
        page.browser.open(page.url)  # the choice is kept across a reload
        page.browser.wait_for(
            lambda d: (
                shown_options(page) == expected
                and Select(page.browser.find("#model-picker")).first_selected_option.text
                == "tiny (1 live worker)"
            ),
            message="the kept choice",
        )
        assert page.browser.console_errors() == []
    finally:
        cluster.stop()
