"""The web UI's endpoints (bad input), and the UI in a real browser: headless Chromium (Debian's `chromium` and `chromium-driver`, which .ci/run
installs) driven by Selenium against the real server (uvicorn on 127.0.0.1, two tiny fine-tuned models).

A user opens the chat page, sends a message and watches the answer stream in, regenerates it, flags it with a
reason; a labeler opens /label, writes the ideal response for the flagged answer, and judges a blind A/B pair;
every step is checked in the SQLite store. Screenshots of both pages are saved in the test's tmp_path.
"""

from __future__ import annotations

import shutil

import pytest

from llmlab.monitor.store import Store
from llmlab.serve.app import create_app
from llmlab.serve.settings import ServeSettings
from llmlab.train.settings import Bookkeeping
from llmlab.train.sft import SFTConfig, sft

from test_serve import running

needs_chromium = pytest.mark.skipif(not (shutil.which("chromium") and shutil.which("chromedriver")),
                                    reason="needs Debian's chromium and chromium-driver (.ci/run installs them)")

WAIT_S = 30  # generous: a loaded 2-core CI machine runs the model and the browser at once


@pytest.fixture()
def browser():
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = shutil.which("chromium")
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu", "--window-size=1360,860"):
        options.add_argument(arg)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})  # the console, for failure messages
    # an explicit driver path: Selenium Manager never looks for (or downloads) a driver
    driver = webdriver.Chrome(service=Service(executable_path=shutil.which("chromedriver")), options=options)
    driver.set_page_load_timeout(WAIT_S)
    yield driver
    driver.quit()


def test_ui_endpoints_answer_bad_input_with_errors(tmp_path):
    from fastapi import FastAPI
    from fastapi.testclient import TestClient

    from llmlab.serve.ui import ui_router

    store = Store(tmp_path / "serve.sqlite")
    _, message = store.start_exchange(model="m", messages=[{"role": "user", "content": "Hi"}], params={})
    store.finish_exchange(message, "Hello.", "stop", {})
    app = FastAPI()
    app.include_router(ui_router(store, lambda: ["m"]))
    client = TestClient(app)
    assert "<title>llmlab chat</title>" in client.get("/").text and "labeling" in client.get("/label").text
    assert client.get("/static/chat.js").headers["content-type"].startswith("text/javascript")
    assert client.get("/static/..%2Fui.py").status_code == 404 and client.get("/static/nope.js").status_code == 404
    bad = client.post("/api/feedback", json={"message_id": message, "kind": "flag"})
    assert bad.status_code == 400 and "reason" in bad.json()["error"]["message"]
    assert client.post("/api/feedback", json={"message_id": message, "kind": "meh"}).status_code == 400
    assert client.post("/api/feedback", json={"message_id": message, "kind": "flag", "reason": "rude"}).status_code == 200
    assert client.get("/api/queue").json()["items"][0]["flagged"]
    assert client.post("/api/labels", json={"message_id": message, "ideal": " "}).status_code == 400
    assert client.post("/api/labels", json={"message_id": message, "ideal": "Hello!"}).json()["id"] == 1
    assert client.post("/api/comparisons", json={"message_a": message, "message_b": message, "winner": "a"}).status_code == 400
    assert client.get("/api/leaderboard").json()["rows"][0]["model"] == "m"
    assert client.get("/api/instructions").json()["markdown"].startswith("# Labeling guide")


def test_ui_api_endpoints_need_the_servers_api_key(sft_run, tmp_path):
    from fastapi.testclient import TestClient

    app = create_app({"m": sft_run / "base"}, api_keys=["k1"], store=Store(tmp_path / "serve.sqlite"))
    with TestClient(app) as client:
        assert client.get("/").status_code == 200 and client.get("/static/common.js").status_code == 200
        denied = client.get("/api/queue")
        assert denied.status_code == 401 and "API key" in denied.json()["error"]["message"]
        assert client.post("/api/feedback", json={"message_id": 1, "kind": "up"}).status_code == 401
        assert client.get("/api/queue", headers={"Authorization": "Bearer k1"}).json() == {"items": []}


@pytest.mark.slow
@needs_chromium
def test_chat_flag_and_label_in_a_browser(sft_run, tmp_path, browser):
    from selenium.common.exceptions import TimeoutException
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys
    from selenium.webdriver.support import expected_conditions as ready
    from selenium.webdriver.support.wait import WebDriverWait

    sft(sft_run, SFTConfig(train_files=[tmp_path / "train.jsonl"], epochs=40, batch_size=6, muon_lr=0.02,
                           embed_lr=0.05, lr=0.004, bookkeeping=Bookkeeping(log_every=100, eval_every=0)))
    store = Store(tmp_path / "serve.sqlite")
    models = {"tiny": sft_run / "chat_sft", "tiny_v2": sft_run / "chat_sft"}
    settings = ServeSettings(max_tokens=32, default_max_tokens=16, rate_limit_per_min=0)
    wait = WebDriverWait(browser, WAIT_S)
    css = lambda selector: browser.find_element(By.CSS_SELECTOR, selector)  # noqa: E731

    def wait_for_status(text: str) -> None:
        """Wait for the labeling page's status line to say `text`; on a timeout, fail with what it says instead."""
        try:
            wait.until(lambda d: text in d.find_element(By.ID, "status").text)
        except TimeoutException:
            browser.save_screenshot(str(tmp_path / "failed.png"))
            console = [entry["message"] for entry in browser.get_log("browser")]
            pytest.fail(f"the page's status says {css('#status').text!r}, not {text!r} (screenshot in {tmp_path}); "
                        f"console: {console}; store: {store.counts()}; "
                        f"pair: {browser.execute_script('return JSON.stringify(state.pair)')}")

    with running(create_app(models, settings=settings, store=store)) as url:
        browser.get(url + "/")
        wait.until(lambda d: len(d.find_elements(By.CSS_SELECTOR, "#model option")) == 2)
        browser.execute_script(  # count text updates of answers: a streamed answer arrives in several pieces
            "window.updates = 0; new MutationObserver(() => window.updates++).observe("
            "document.getElementById('messages'), {subtree: true, characterData: true, childList: true});")
        css("#system").find_element(By.XPATH, "..").click()  # open the system prompt
        css("#system").send_keys("Answer briefly.")
        css("#input").send_keys("What is blue?", Keys.ENTER)
        answer = wait.until(ready.presence_of_element_located((By.CSS_SELECTOR, ".msg.assistant .meta")))
        text = css(".msg.assistant .text").text
        assert text.startswith("The sky.")
        assert browser.execute_script("return window.updates") >= 3  # the user turn, then >= 2 pieces of answer
        browser.save_screenshot(str(tmp_path / "chat.png"))

        (first,) = [m for m in store.review_queue(limit=10)]
        assert first["prompt"] == [{"role": "system", "content": "Answer briefly."},
                                   {"role": "user", "content": "What is blue?"}] and first["answer"] == text
        # regenerate: a second answer to the same stored prompt, in the same conversation
        answer.find_element(By.CSS_SELECTOR, "[data-action=regenerate]").click()
        wait.until(lambda d: store.counts()["messages"] == 4 and store.review_queue(limit=10)[-1]["answer"])
        again = wait.until(ready.presence_of_element_located((By.CSS_SELECTOR, ".msg.assistant .meta")))
        queue = store.review_queue(limit=10)
        assert len(queue) == 2 and queue[0]["conversation_id"] == queue[1]["conversation_id"]
        again.find_element(By.CSS_SELECTOR, "[data-action=flag]").click()
        css(".flagform input").send_keys("made up a fact")
        css("[data-action=submit-flag]").click()
        wait.until(ready.presence_of_element_located((By.CSS_SELECTOR, ".msg.assistant .note")))
        flagged = store.review_queue(limit=10)[0]
        assert flagged["flagged"] and flagged["feedback"] == [{"kind": "flag", "reason": "made up a fact"}]

        browser.get(url + "/label")
        item = wait.until(ready.element_to_be_clickable((By.CSS_SELECTOR, ".item .tag.flag")))
        wait.until(lambda d: "Labeling guide" in d.find_element(By.ID, "guide").text)
        item.click()
        assert "made up a fact" in css("#flags").text and "What is blue?" in css("#prompt").text
        css("#ideal").send_keys("The sky.")
        browser.save_screenshot(str(tmp_path / "label.png"))
        css("#submit-ideal").click()
        wait_for_status("Saved")
        assert [(c["message_id"], c["ideal"]) for c in store.corrections()] == [(flagged["message_id"], "The sky.")]

        # a blind A/B comparison on the other (unflagged) answer's prompt
        wait.until(ready.element_to_be_clickable((By.CSS_SELECTOR, ".item"))).click()
        css("#tab-compare").click()
        css("#generate").click()
        wait.until(ready.visibility_of_element_located((By.CSS_SELECTOR, "#verdict")))
        css("[data-winner=a]").click()
        wait_for_status("A was")
        (comparison,) = store.comparison_rows()
        assert comparison["winner"] == "a" and {comparison["model_a"], comparison["model_b"]} <= set(models)
        assert "1 blind comparison;" in css("#board-note").text
        browser.save_screenshot(str(tmp_path / "compare.png"))
        assert {"tiny", "tiny_v2"} <= {row.text.split()[0] for row in browser.find_elements(By.CSS_SELECTOR, "#board tr")}
    print(f"screenshots: {tmp_path}/chat.png, label.png, compare.png")
