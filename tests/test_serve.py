"""Tests for `llmlab serve`: the official openai client against a real uvicorn server on 127.0.0.1 (a free port, a
background thread), tiny random models, a few tokens per request; bad input, keys, rate limits, disconnects, storing.
"""

from __future__ import annotations

import contextlib
import json
import re
import socket
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import openai
import pytest
import uvicorn

from llmlab.cli.serve import is_loopback, parse_models, serve
from llmlab.errors import LlmlabError
from llmlab.monitor.store import Store
from llmlab.serve.app import create_app
from llmlab.serve.generation import _stop_prefix_len
from llmlab.serve.settings import ServeSettings

SEQ_LEN = 64


@contextlib.contextmanager
def running(app) -> str:
    """Serve `app` with uvicorn on a free loopback port in a thread; yields the base URL."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", timeout_graceful_shutdown=2))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    for _ in range(200):
        if server.started:
            break
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{sock.getsockname()[1]}"
    finally:
        server.should_exit = True
        thread.join(10)
        sock.close()


@pytest.fixture(scope="module")
def models(tmp_path_factory, tiny_tokenizer) -> dict[str, Path]:
    """Two tiny random model folders sharing the tiny tokenizer: "chat" and "base" (different weights)."""
    from llmlab.model.config import ModelConfig
    from llmlab.model.folder import save_model_folder
    from llmlab.model.transformer import Transformer
    from llmlab.tokenizer.bpe import Tokenizer

    root = tmp_path_factory.mktemp("models")
    cfg = ModelConfig.from_depth(1, vocab_size=Tokenizer.load(tiny_tokenizer).vocab_size, seq_len=SEQ_LEN,
                                 d_model=32, n_heads=2, zero_init_proj=False)
    out = {}
    for seed, name in enumerate(["chat", "base"]):
        save_model_folder(root / name, Transformer(cfg, seed=seed), tiny_tokenizer, {"stage": name})
        out[name] = root / name
    return out


@pytest.fixture(scope="module")
def server(models, tmp_path_factory):
    """(base URL, store) of a server with both models, small limits, a store, no keys, no rate limit."""
    store = Store(tmp_path_factory.mktemp("db") / "serve.sqlite")
    settings = ServeSettings(max_batch=4, max_tokens=48, default_max_tokens=8, max_body_bytes=20_000,
                             max_messages=8, rate_limit_per_min=0)
    with running(create_app(models, settings=settings, store=store)) as url:
        yield url, store


def client(url: str, key: str = "none") -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{url}/v1", api_key=key, max_retries=0, timeout=30)


CHAT = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "the river"}]


def test_models_chat_stream_and_completions(server):
    url, store = server
    c = client(url)
    assert sorted(m.id for m in c.models.list()) == ["base", "chat"]
    assert httpx.get(url + "/").status_code == 200  # with a store, the web UI is mounted

    resp = c.chat.completions.create(model="chat", messages=CHAT, max_tokens=6, temperature=0)
    choice = resp.choices[0]
    assert choice.message.role == "assistant" and choice.finish_reason in ("stop", "length")
    assert resp.usage.completion_tokens <= 6 and resp.usage.prompt_tokens > 5
    ids = resp.model_extra["llmlab"]
    stored = store.message(ids["message_id"])
    assert (stored["content"], stored["finish_reason"]) == (choice.message.content, choice.finish_reason)

    chunks = list(c.chat.completions.create(model="chat", messages=CHAT, max_tokens=6, temperature=0, stream=True,
                                            stream_options={"include_usage": True}))
    assert chunks[0].choices[0].delta.role == "assistant"
    text = "".join(ch.choices[0].delta.content or "" for ch in chunks if ch.choices)
    assert text == choice.message.content  # greedy: streaming and not give the same answer
    assert [ch.choices[0].finish_reason for ch in chunks if ch.choices][-1] == choice.finish_reason
    assert chunks[-1].choices == [] and chunks[-1].usage.total_tokens == resp.usage.total_tokens
    assert all(ch.model_extra["llmlab"]["message_id"] == chunks[0].model_extra["llmlab"]["message_id"]
               for ch in chunks)

    comp = c.completions.create(model="base", prompt="The river", max_tokens=5, temperature=0, echo=True)
    assert comp.choices[0].text.startswith("The river") and comp.usage.completion_tokens <= 5
    streamed = "".join(ch.choices[0].text for ch in c.completions.create(
        model="base", prompt="The river", max_tokens=5, temperature=0, stream=True))
    assert "The river" + streamed == comp.choices[0].text
    by_ids = c.completions.create(model="base", prompt=[[1, 2, 3]], max_tokens=3, temperature=0)
    assert by_ids.usage.prompt_tokens == 3
    stored = store.completion(comp.model_extra["llmlab"]["completion_id"])  # text completions are logged too
    assert (stored["model"], stored["prompt"], "The river" + stored["text"], stored["finish_reason"]) == \
        ("base", "The river", comp.choices[0].text, comp.choices[0].finish_reason)


def test_sampling_options_stop_and_clamps(server):
    url, _ = server
    c = client(url)
    long = c.completions.create(model="base", prompt="a", max_tokens=1000, temperature=0)
    assert long.usage.completion_tokens <= 48  # max_tokens clamped to the server's limit
    text = long.choices[0].text
    stop = text[len(text) // 2 : len(text) // 2 + 2]
    if stop.strip():
        cut = c.completions.create(model="base", prompt="a", max_tokens=48, temperature=0, stop=[stop])
        assert cut.choices[0].text == text[: text.find(stop)] and cut.choices[0].finish_reason == "stop"
    seeded = [c.completions.create(model="base", prompt="a", max_tokens=8, temperature=1.0, seed=5,
                                   extra_body={"top_k": 20}).choices[0].text for _ in range(2)]
    assert seeded[0] == seeded[1]


def test_logprobs_are_the_models_own(server, models):
    """Chat and legacy completions, whole and streamed: each shown token with its log-probability under the model and
    the most likely alternatives, as a full forward pass of the prompt and answer gives them."""
    import torch

    from llmlab.model.folder import load_model_folder
    from llmlab.tokenizer.chat import render_prompt

    url, _ = server
    c = client(url)
    resp = c.chat.completions.create(model="chat", messages=CHAT, max_tokens=6, temperature=0, logprobs=True,
                                     top_logprobs=3)
    content = resp.choices[0].logprobs.content
    model, tok, _ = load_model_folder(models["chat"])
    prompt = render_prompt(tok, CHAT)
    by_bytes = {tok.token_bytes(i): i for i in range(tok.vocab_size)}  # a token may be part of a UTF-8 character
    ids = [by_bytes[bytes(item.bytes)] for item in content]
    text = b"".join(bytes(item.bytes) for item in content).decode("utf-8", errors="replace")
    assert text == resp.choices[0].message.content
    with torch.no_grad():
        logp = model(torch.tensor([prompt + ids]))[0][0, len(prompt) - 1 : -1].log_softmax(-1)  # (n, V)
    for row, item in enumerate(content):
        assert item.logprob == pytest.approx(float(logp[row, ids[row]]), abs=1e-3)
        assert [t.logprob for t in item.top_logprobs] == pytest.approx(logp[row].topk(3).values.tolist(), abs=1e-3)
        assert item.top_logprobs[0].token == item.token  # greedy: the top alternative is the token itself
        assert bytes(item.bytes).decode("utf-8", errors="replace") == item.token
    streamed = [chunk.choices[0].logprobs for chunk in c.chat.completions.create(
        model="chat", messages=CHAT, max_tokens=6, temperature=0, logprobs=True, top_logprobs=3, stream=True)
        if chunk.choices and chunk.choices[0].logprobs]
    assert [(i.token, round(i.logprob, 4)) for lp in streamed for i in lp.content] == \
        [(i.token, round(i.logprob, 4)) for i in content]
    plain = c.chat.completions.create(model="chat", messages=CHAT, max_tokens=6, temperature=0)
    assert plain.choices[0].logprobs is None

    comp = c.completions.create(model="base", prompt="The river", max_tokens=5, temperature=0, logprobs=2, echo=True)
    lp = comp.choices[0].logprobs
    assert "".join(lp.tokens) == comp.choices[0].text[len("The river"):] and len(lp.token_logprobs) == len(lp.tokens)
    assert lp.text_offset[0] == len("The river") and all(len(top) <= 2 for top in lp.top_logprobs)
    assert all(max(top.values()) >= value - 1e-6 for top, value in zip(lp.top_logprobs, lp.token_logprobs))


@pytest.mark.parametrize("extra, words", [
    ({"response_format": {"type": "json_object"}}, "response_format is not supported"),
    ({"response_format": {"type": "json_schema", "json_schema": {"name": "x", "schema": {}}}}, "constrained"),
    ({"tools": [{"type": "function", "function": {"name": "f", "parameters": {}}}]}, "tools is not supported"),
    ({"presence_penalty": 0.5}, "presence_penalty is not supported"),
    ({"logit_bias": {"5": 10}}, "logit_bias"),
    ({"top_logprobs": 2}, "top_logprobs needs logprobs"),
    ({"top_logprobs": 30, "logprobs": True}, "top_logprobs"),
    ({"extra_body": {"unknown_field": 1}}, "unknown parameter(s) unknown_field"),
])
def test_parameters_the_server_cannot_honour_are_refused(server, extra, words):
    url, _ = server
    with pytest.raises(openai.BadRequestError, match=re.escape(words)):
        client(url).chat.completions.create(model="chat", messages=CHAT, max_tokens=4, **extra)
    ok = client(url).chat.completions.create(model="chat", messages=CHAT, max_tokens=4, user="u-1",
                                             response_format={"type": "text"}, tool_choice="none")
    assert ok.choices[0].finish_reason in ("stop", "length")


def test_a_seeded_completion_is_what_llmlab_sample_writes(server, models, capsys):
    """Same prompt, settings and seed: the server's batching engine and `llmlab sample` draw the same tokens."""
    from llmlab.cli.sample import sample

    url, _ = server
    options = {"max_tokens": 12, "temperature": 1.0, "seed": 11}
    texts = []
    for top_k in (None, 8):
        served = client(url).completions.create(model="base", prompt="The river", **options,
                                                extra_body={"top_k": top_k}).choices[0].text
        sample(model=models["base"], prompt="The river", top_k=top_k, **options)
        printed = capsys.readouterr().out
        assert printed == "The river" + served + "\n"
        texts.append(served)
    assert texts[0] != texts[1] and all(len(t) > 5 for t in texts)  # real samples, and top_k changed them


def test_stop_prefix_holdback():
    assert _stop_prefix_len("hello wor", ["world"]) == 3
    assert _stop_prefix_len("hello", ["xyz"]) == 0
    assert _stop_prefix_len("hello wor", ["xyz", "word", "wo"]) == 3


def test_concurrent_requests_match_sequential(server):
    url, _ = server
    c = client(url)
    prompts = [f"the {w}" for w in ("river", "city", "king", "moon", "ship", "star")]

    def ask(p):
        return c.completions.create(model="base", prompt=p, max_tokens=8, temperature=0).choices[0].text

    with ThreadPoolExecutor(6) as pool:
        together = list(pool.map(ask, prompts))
    assert together == [ask(p) for p in prompts]


@pytest.mark.parametrize("body, status, words", [
    ({"model": "nope", "messages": CHAT}, 404, "does not exist"),
    ({"model": "chat", "messages": []}, 400, "must not be empty"),
    ({"model": "chat", "messages": "hi"}, 400, "messages"),
    ({"model": "chat", "messages": [{"role": "user", "content": 5}]}, 400, "messages.0.content"),
    ({"model": "chat", "messages": [{"role": "wizard", "content": "x"}]}, 400, "unsupported chat role"),
    ({"model": "chat", "messages": CHAT, "temperature": 9}, 400, "temperature"),
    ({"model": "chat", "messages": CHAT, "n": 2}, 400, "n=2"),
    ({"model": "chat", "messages": CHAT * 5}, 400, "limit of 8"),
    ({"model": "chat", "messages": [{"role": "user", "content": "x"}, {"role": "user", "content": "the " * 200}]},
     400, "over this server's limit"),
    ({"model": "base", "prompt": [1] * (SEQ_LEN + 5)}, 400, "over this server's limit"),
    ({"model": "base", "prompt": ["a", "b"]}, 400, "one prompt per request"),
    ({"model": "chat", "messages": [{"role": "user", "content": "x" * 30_000}]}, 413, "over the limit"),
])
def test_bad_requests_get_openai_errors(server, body, status, words):
    url, _ = server
    path = "/v1/completions" if "prompt" in body else "/v1/chat/completions"
    r = httpx.post(url + path, json=body, timeout=30)
    assert r.status_code == status, r.text
    err = r.json()["error"]
    assert words in err["message"] and set(err) == {"message", "type", "param", "code"}


def test_malformed_json_and_client_exceptions(server):
    url, _ = server
    for raw in (b"{not json", b"[1, 2]", b"\xff\xfe"):
        r = httpx.post(url + "/v1/chat/completions", content=raw, headers={"content-type": "application/json"})
        assert r.status_code == 400 and "error" in r.json()
    c = client(url)
    with pytest.raises(openai.NotFoundError):
        c.chat.completions.create(model="nope", messages=CHAT)
    with pytest.raises(openai.BadRequestError):
        c.chat.completions.create(model="chat", messages=[])
    assert httpx.get(url + "/health").json()["status"] == "ok"


@pytest.fixture(scope="module")
def long_model(tmp_path_factory, tiny_tokenizer) -> Path:
    """A tiny model with a 2,048-token context: answers of 2,000 tokens (ignore_eos) take a while to generate."""
    from llmlab.model.config import ModelConfig
    from llmlab.model.folder import save_model_folder
    from llmlab.model.transformer import Transformer
    from llmlab.tokenizer.bpe import Tokenizer

    cfg = ModelConfig.from_depth(1, vocab_size=Tokenizer.load(tiny_tokenizer).vocab_size, seq_len=2048, d_model=32,
                                 n_heads=2)
    folder = tmp_path_factory.mktemp("long") / "long"
    save_model_folder(folder, Transformer(cfg), tiny_tokenizer)
    return folder


LONG = {"model": "long", "messages": CHAT, "max_tokens": 2000, "temperature": 0, "ignore_eos": True}


def test_disconnect_mid_stream_is_stored_and_server_goes_on(long_model, tmp_path):
    """A client that leaves after the first chunk: its row is freed long before its 2,000 tokens, the partial answer
    is stored as "cancelled", and the server goes on serving."""
    store = Store(tmp_path / "serve.sqlite")
    settings = ServeSettings(max_tokens=2000, rate_limit_per_min=0)
    with running(create_app({"long": long_model}, settings=settings, store=store)) as url:
        body = {**LONG, "stream": True}
        with httpx.stream("POST", url + "/v1/chat/completions", json=body, timeout=30) as r:
            first = json.loads(next(r.iter_lines()).removeprefix("data: "))
        message_id = first["llmlab"]["message_id"]
        for _ in range(200):  # the server notices the disconnect, frees the row and stores the partial answer
            if store.message(message_id)["finish_reason"] is not None:
                break
            time.sleep(0.05)
        stored = store.message(message_id)
        assert stored["finish_reason"] == "cancelled" and json.loads(stored["usage"])["completion_tokens"] < 2000
        with pytest.raises(httpx.ReadTimeout):  # a non-streaming client that gives up is cancelled too
            httpx.post(url + "/v1/chat/completions", json=LONG, timeout=0.5)
        second = message_id + 3  # a new conversation: its system, user and assistant messages follow the first's
        for _ in range(200):
            if store.message(second)["finish_reason"] is not None:
                break
            time.sleep(0.05)
        assert (store.message(second)["role"], store.message(second)["finish_reason"]) == ("assistant", "cancelled")
        resp = client(url).chat.completions.create(model="long", messages=CHAT, max_tokens=3)
        assert resp.choices[0].finish_reason in ("stop", "length")
        assert httpx.get(url + "/health").json()["models"]["long"] == {"active": 0, "waiting": 0}


def test_conversation_continues_in_store(server):
    url, store = server
    c = client(url)
    first = c.chat.completions.create(model="chat", messages=CHAT, max_tokens=4, temperature=0)
    conv = first.model_extra["llmlab"]["conversation_id"]
    follow = CHAT + [{"role": "assistant", "content": first.choices[0].message.content},
                     {"role": "user", "content": "more"}]
    second = c.chat.completions.create(model="chat", messages=follow, max_tokens=4,
                                       extra_body={"conversation_id": conv})
    assert second.model_extra["llmlab"]["conversation_id"] == conv


def test_api_keys_and_rate_limit(models):
    settings = ServeSettings(max_tokens=2, rate_limit_per_min=1, rate_burst=3)
    with running(create_app({"chat": models["chat"]}, settings=settings, api_keys=["k1", "k2"])) as url:
        with pytest.raises(openai.AuthenticationError):
            client(url, key="wrong").models.list()
        r = httpx.post(url + "/v1/chat/completions", json={"model": "chat", "messages": CHAT})
        assert r.status_code == 401 and r.json()["error"]["code"] == "invalid_api_key"
        assert httpx.get(url + "/health").status_code == 200  # health needs no key
        c = client(url, key="k1")
        for _ in range(3):
            c.chat.completions.create(model="chat", messages=CHAT, max_tokens=1)
        with pytest.raises(openai.RateLimitError):
            c.chat.completions.create(model="chat", messages=CHAT, max_tokens=1)
        client(url, key="k2").models.list()  # another key has its own bucket


def test_cli_checks(models, monkeypatch):
    assert parse_models(["a=runs/x/chat_dpo", "runs/x/base/", "m/q8.gguf", "hf:org/SmolLM2"]) == {
        "a": "runs/x/chat_dpo", "base": "runs/x/base/", "q8": "m/q8.gguf", "SmolLM2": "hf:org/SmolLM2"}
    with pytest.raises(LlmlabError, match="duplicate"):
        parse_models(["a=x", "a=y"])
    with pytest.raises(LlmlabError, match="empty"):
        parse_models(["a="])
    with pytest.raises(LlmlabError, match="no_such"):
        create_app({"a": "/no_such/folder"})
    assert is_loopback("127.0.0.1") and is_loopback("::1") and not is_loopback("0.0.0.0")
    monkeypatch.delenv("LLMLAB_API_KEYS", raising=False)
    with pytest.raises(LlmlabError, match="api_keys"):
        serve(models=[str(models["chat"])], host="0.0.0.0")


def test_timeouts_answer_504_and_store_partial(long_model, tmp_path):
    store = Store(tmp_path / "serve.sqlite")
    settings = ServeSettings(max_tokens=2000, rate_limit_per_min=0, request_timeout_s=0.3)
    with running(create_app({"long": long_model}, settings=settings, store=store)) as url:
        r = httpx.post(url + "/v1/chat/completions", json=LONG, timeout=30)
        assert r.status_code == 504 and r.json()["error"]["type"] == "timeout_error"
        with httpx.stream("POST", url + "/v1/chat/completions", json={**LONG, "stream": True}, timeout=30) as r:
            lines = [line for line in r.iter_lines() if line]
        assert "timed out" in lines[-2] and lines[-1] == "data: [DONE]"
        message_id = json.loads(lines[0].removeprefix("data: "))["llmlab"]["message_id"]
        assert store.message(message_id)["finish_reason"] == "timeout"
        assert store.counts()["conversations"] == 2


def test_flood_gets_429_or_answers_and_server_goes_on(long_model):
    """More requests than rows and queue: the extra ones get 429 "busy" at once; the others are answered."""
    settings = ServeSettings(max_batch=2, max_waiting=1, max_tokens=300, rate_limit_per_min=0)
    with running(create_app({"long": long_model}, settings=settings)) as url:
        body = {**LONG, "max_tokens": 300}
        with ThreadPoolExecutor(12) as pool:
            replies = list(pool.map(lambda _: httpx.post(url + "/v1/chat/completions", json=body, timeout=60),
                                    range(12)))
        codes = sorted(r.status_code for r in replies)
        assert set(codes) <= {200, 429} and codes.count(200) >= 3, codes
        assert all(r.json()["error"]["code"] == "server_busy" for r in replies if r.status_code == 429)
        assert client(url).chat.completions.create(model="long", messages=CHAT, max_tokens=2).choices


def test_max_context_bounds_prompts(models):
    from fastapi.testclient import TestClient

    app = create_app({"chat": models["chat"]}, settings=ServeSettings(max_context=24, rate_limit_per_min=0))
    with TestClient(app) as c:
        body = {"model": "chat", "messages": [{"role": "user", "content": "the river " * 20}], "max_tokens": 4}
        r = c.post("/v1/chat/completions", json=body)
        assert r.status_code == 400 and "context 24" in r.json()["error"]["message"]
        r = c.post("/v1/completions", json={"model": "chat", "prompt": "a", "max_tokens": 100, "ignore_eos": True})
        assert r.json()["usage"]["total_tokens"] == 25  # the context is full (the last token is never fed back)


def test_sse_framing(server):
    """Each event is one `data: {json}` line and a blank line; the stream ends with `data: [DONE]`."""
    url, _ = server
    body = {"model": "chat", "messages": CHAT, "max_tokens": 5, "stream": True}
    with httpx.stream("POST", url + "/v1/chat/completions", json=body, timeout=30) as r:
        assert r.headers["content-type"].startswith("text/event-stream")
        raw = r.read().decode()
    events = raw.split("\n\n")
    assert events[-1] == "" and events[-2] == "data: [DONE]"
    chunks = [json.loads(e.removeprefix("data: ")) for e in events[:-2]]
    assert all(e.startswith("data: ") and "\n" not in e for e in events[:-1])
    assert {c["object"] for c in chunks} == {"chat.completion.chunk"} and len({c["id"] for c in chunks}) == 1
    assert chunks[-1]["choices"][0]["delta"] == {} and chunks[-1]["choices"][0]["finish_reason"] in ("stop", "length")


@pytest.mark.slow
def test_llmlab_serve_command(models, tmp_path):
    """The real command in a subprocess: options parsed, keys from LLMLAB_API_KEYS, chats stored in --db."""
    import os
    import subprocess
    import sys

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    cmd = [sys.executable, "-m", "llmlab", "serve", "--models", f"[c={models['chat']}]", "--port", str(port),
           "--db", str(tmp_path / "serve.sqlite"), "--settings.max_tokens", "3", "--threads", "1"]
    proc = subprocess.Popen(cmd, env={**os.environ, "LLMLAB_API_KEYS": "k1,k2"})
    url = f"http://127.0.0.1:{port}"
    try:
        for _ in range(300):
            with contextlib.suppress(httpx.TransportError):
                if httpx.get(url + "/health", timeout=1).status_code == 200:
                    break
            time.sleep(0.1)
        resp = client(url, key="k2").chat.completions.create(model="c", messages=CHAT, max_tokens=50)
        assert resp.usage.completion_tokens <= 3
        with pytest.raises(openai.AuthenticationError):
            client(url).models.list()
    finally:
        proc.terminate()
        assert proc.wait(30) in (0, -15)  # uvicorn shuts down, then re-raises the SIGTERM it caught
    assert Store(tmp_path / "serve.sqlite").counts()["conversations"] == 1


def test_reasoning_effort_votes_over_sampled_answers(server):
    url, store = server
    c = client(url)
    plain = c.chat.completions.create(model="chat", messages=CHAT, max_tokens=4, temperature=1.0, seed=3)
    low = c.chat.completions.create(model="chat", messages=CHAT, max_tokens=4, temperature=1.0, seed=3,
                                    reasoning_effort="low")
    assert low.choices[0].message.content == plain.choices[0].message.content  # low: one answer, as without it
    high = c.chat.completions.create(model="chat", messages=CHAT, max_tokens=4, temperature=1.0, seed=3,
                                     reasoning_effort="high")
    reasoning = high.model_extra["llmlab"]["reasoning"]
    assert reasoning["samples"] == 32 and reasoning["strategy"] == "self-consistency"
    assert sum(reasoning["votes"].values()) == 32 and len(reasoning["votes"]) > 1  # tiny random model: many answers
    chosen = " ".join(high.choices[0].message.content.lower().split())
    assert reasoning["votes"][chosen] == max(reasoning["votes"].values())
    assert high.usage.completion_tokens > 32  # every sample's tokens were computed
    streamed = "".join(ch.choices[0].delta.content or "" for ch in c.chat.completions.create(
        model="chat", messages=CHAT, max_tokens=4, temperature=1.0, seed=3, reasoning_effort="high", stream=True)
        if ch.choices)
    assert streamed == high.choices[0].message.content
    with pytest.raises(openai.BadRequestError, match="reasoning_effort"):
        c.chat.completions.create(model="chat", messages=CHAT, max_tokens=4, extra_body={"reasoning_effort": "max"})
