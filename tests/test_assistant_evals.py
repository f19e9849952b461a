"""The assistant evaluations (llmlab.eval.assistant_evals) score a scripted right answer as right, and an echo of
the previous turn, a refusal or a wrong fact as wrong, end to end through the sampled and greedy answers."""

from __future__ import annotations

import pytest

from llmlab.data.assistant_safety import REFUSAL
from llmlab.data.assistant_sources import IDENTITY, SCOPE
from llmlab.eval import assistant_evals as ae
from llmlab.eval.chat_sampling import SAMPLES
from llmlab.eval.context import EvalContext
from llmlab.model.config import ModelConfig
from llmlab.model.transformer import Transformer
from llmlab.tokenizer.bpe import Tokenizer
from llmlab.tokenizer.chat import render_prompt


def previous_answer(item: dict) -> str:
    return [m["content"] for m in item["messages"] if m["role"] == "assistant"][-1]


def test_multiturn_needs_the_later_fact_and_no_echo():
    items = ae.multiturn_items(n=60)
    assert {i["shape"] for i in items} == {"switch", "switch_then_follow_up", "follow_up"}
    assert all(len(i["messages"]) in (3, 5) for i in items)  # two or three user turns, earlier answers given
    for item in items:
        assert item["check"](f"It is {item['gold']}.")
        assert not item["check"](previous_answer(item))  # the earlier answer again
        assert not item["check"](previous_answer(item) + f" Also {item['gold']}.")  # an echo that then adds it
        assert not item["check"](REFUSAL)


def test_taught_facts_use_held_out_phrasings_of_train_countries():
    from llmlab.data.assistant import build_default_mixture

    trained = {m["content"] for row in build_default_mixture()["sft"]["train"] for m in row["messages"]
               if m["role"] == "user"}
    items = ae.taught_fact_items()
    assert len(items) >= 100 and not any(i["messages"][0]["content"] in trained for i in items)
    item = next(i for i in items if i["fact"] == "capital")
    assert item["check"](f"The capital of {item['country']} is {item['gold']}.")
    assert not item["check"](f"The capital of {item['country']} is Atlantis.")


def test_knowledge_transfer_items_are_never_in_sft_and_mostly_stated():
    from llmlab.data.assistant import build_default_mixture

    trained = {m["content"] for row in build_default_mixture()["sft"]["train"] for m in row["messages"]}
    items = ae.transfer_items()
    stated = [i for i in items if i["stated"]]
    assert len(stated) >= 100
    assert not any(i["gold"] in text for i in stated for text in trained if i["country"] in text)
    for item in stated[:20]:
        assert item["check"](f"It is {item['gold']}.") and not item["check"](item["messages"][0]["content"])


def test_identity_answers():
    items = ae.identity_items()
    assert len(items) >= 100 and {i["kind"] for i in items} == {"identity", "scope"}
    for item in items:
        right = IDENTITY if item["kind"] == "identity" else SCOPE
        assert item["check"](right) and not item["check"](REFUSAL) and not item["check"](item["messages"][0]["content"])


@pytest.mark.parametrize("reply, expected", [("right", 1.0), ("echo", 0.0)])
def test_measure_scores_sampled_and_greedy_answers(tiny_tokenizer, tmp_path, scripted_replies, reply, expected):
    tok = Tokenizer.load(tiny_tokenizer)
    items = ae.multiturn_items(n=12)
    answers = {}
    for item in items:
        answers[tuple(render_prompt(tok, item["messages"]))] = (
            f"It is {item['gold']}." if reply == "right" else previous_answer(item))
    scripted_replies(tok, answers.get)
    model = Transformer(ModelConfig.from_depth(1, vocab_size=tok.vocab_size, seq_len=1024, d_model=32, n_heads=2))
    ctx = EvalContext(model, tok, {"stage": "sft"}, tmp_path, tmp_path, seed=0, preset="quick",
                      sizes={"assistant": None, "chat_max_tokens": 200})
    result = ae.measure(ctx, items)
    assert result["score"] == expected and result["metrics"]["greedy"] == expected and result["n"] == 12
    assert len(ctx.items[0]["samples"]) == SAMPLES and ctx.items[0]["sampling"]["temperature"] == 0.7


def test_a_borders_answer_names_true_neighbours_only():
    right = ae.neighbours_right
    assert right("Benin borders Burkina Faso, Niger, Nigeria and Togo.", "Benin",
                 ["Burkina Faso", "Niger", "Nigeria", "Togo"])
    assert right("Benin borders Nigeria.", "Benin", ["Burkina Faso", "Niger", "Nigeria", "Togo"])  # one of them
    assert not right("Benin borders Nigeria and France.", "Benin", ["Burkina Faso", "Niger", "Nigeria", "Togo"])
    assert not right("Chad borders Nigeria.", "Chad", ["Niger"])  # "Niger" inside "Nigeria" is not Niger
    assert right("Iceland has no land borders.", "Iceland", []) and not right("Iceland borders Norway.", "Iceland", [])
