"""lm-evaluation-harness on llmlab models: log-likelihoods against sums computed by hand from the model's logits,
generation against the engine, and a tiny local task (multiple choice, perplexity, generation) run offline end to
end through lm_eval.simple_evaluate."""

from __future__ import annotations

import copy
import json
import os

import pytest
import torch

# Nothing may download: lm-eval loads task data through `datasets`, which reads these when imported.
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("HF_HUB_OFFLINE", "1")

lm_eval = pytest.importorskip("lm_eval")
from lm_eval.api.instance import Instance  # noqa: E402

from llmlab.engine.generate import generate_ids  # noqa: E402
from llmlab.eval.lm_eval_model import LlmlabLM  # noqa: E402
from llmlab.model.config import ModelConfig  # noqa: E402
from llmlab.model.transformer import Transformer  # noqa: E402
from llmlab.tokenizer.bpe import Tokenizer  # noqa: E402


@pytest.fixture(scope="module")
def tiny(tiny_tokenizer):
    tok = Tokenizer.load(tiny_tokenizer)
    cfg = ModelConfig.from_depth(2, vocab_size=tok.vocab_size, seq_len=64, d_model=32, n_heads=2, zero_init_proj=False)
    return Transformer(cfg, seed=3).eval(), tok


def requests(kind: str, args: list[tuple]) -> list[Instance]:
    return [Instance(request_type=kind, doc={}, arguments=a, idx=i) for i, a in enumerate(args)]


@torch.no_grad()
def logprob(model: Transformer, inputs: list[int], targets: list[int]) -> float:
    """log p(targets | inputs), the targets being the last len(targets) tokens of inputs + targets."""
    ids = inputs + targets
    logits, _ = model(torch.tensor([ids[:-1]]))  # (1, T, V)
    logprobs = logits[0, -len(targets) :].log_softmax(-1)
    return logprobs[torch.arange(len(targets)), torch.tensor(targets)].sum().item()


def test_loglikelihood_matches_the_logits(tiny):
    model, tok = tiny
    lm = LlmlabLM(model=model, tokenizer=tok, batch_size=2)
    pairs = [("The river", " runs to the sea"), ("", "Light water"), ("Old king ", "queen"), ("A", " b")]
    got = lm.loglikelihood(requests("loglikelihood", pairs))
    bos = tok.bos_id
    expected = [
        # context and continuation split where the context alone ends; its trailing space moves to the continuation
        logprob(model, [bos, *tok.encode("The river")], tok.encode(" runs to the sea")),
        logprob(model, [bos], tok.encode("Light water")),  # empty context: BOS
        logprob(model, [bos, *tok.encode("Old king")], tok.encode(" queen")),
        logprob(model, [bos, *tok.encode("A")], tok.encode(" b")),
    ]
    assert [score for score, _ in got] == pytest.approx(expected, abs=1e-4)
    # is_greedy: true exactly when the continuation is the argmax at each of its positions
    prompt = [bos, *tok.encode("The river")]
    greedy = generate_ids(model, prompt, 3, temperature=0.0)[0]
    text = tok.decode(greedy)
    (score, is_greedy), (_, not_greedy) = lm.loglikelihood(
        requests("loglikelihood", [("The river", text), ("The river", text + "zq")])
    )
    assert tok.encode("The river" + text)[len(prompt) - 1 :] == greedy  # the split gives back those tokens
    assert is_greedy and score == pytest.approx(logprob(model, prompt, greedy), abs=1e-4)
    assert not not_greedy or tok.encode("The river" + text + "zq")[len(prompt) - 1 :] == greedy


def test_long_inputs_keep_their_last_tokens(tiny):
    model, tok = tiny
    lm = LlmlabLM(model=model, tokenizer=tok, max_length=16)
    context = " ".join(["the old city"] * 12)
    ids = [tok.bos_id, *tok.encode(context + " by the sea")]
    n = len(tok.encode(" by the sea"))
    [(score, _)] = lm.loglikelihood(requests("loglikelihood", [(context, " by the sea")]))
    assert score == pytest.approx(logprob(model, ids[-17:-n], ids[-n:]), abs=1e-4)


def test_rolling_loglikelihood_windows(tiny):
    model, tok = tiny
    text = "The river runs to the sea. Old king and queen of the city. Green light on water, red sun."
    t = tok.encode(text)
    assert 33 <= len(t) <= 48, len(t)  # the windows below are for 16 < ... 3 windows of max_length 16
    [whole] = LlmlabLM(model=model, tokenizer=tok).loglikelihood_rolling(requests("loglikelihood_rolling", [(text,)]))
    assert whole == pytest.approx(logprob(model, [tok.bos_id], t), abs=1e-4)
    [windowed] = LlmlabLM(model=model, tokenizer=tok, max_length=16).loglikelihood_rolling(
        requests("loglikelihood_rolling", [(text,)])
    )
    # Each token once: the first 16 after BOS, the next 16 after the token before them, the rest after as many
    # earlier tokens as fit in 16 inputs.
    expected = (
        logprob(model, [tok.bos_id], t[:16])
        + logprob(model, t[15:16], t[16:32])
        + logprob(model, t[len(t) - 17 : 32], t[32:])
    )
    assert windowed == pytest.approx(expected, abs=1e-4)


def test_generate_until_stops_at_the_until_strings(tiny):
    model, tok = tiny
    lm = LlmlabLM(model=model, tokenizer=tok, batch_size=2)  # 4 requests: the engine batches and refills rows
    contexts = ["The river", "Old king and queen of the city", "A", "Green light on water, red sun over the sea"]
    full = [tok.decode(generate_ids(model, [tok.bos_id, *tok.encode(c)], 12, temperature=0.0)[0]) for c in contexts]
    stop = full[0][len(full[0]) // 2 : len(full[0]) // 2 + 1] if full[0].strip() else "\n"
    gen_kwargs = [{"until": [stop], "max_gen_toks": 12}] + [{"max_gen_toks": 12}] * 3
    got = lm.generate_until(requests("generate_until", list(zip(contexts, gen_kwargs))))
    assert got[1:] == full[1:]  # as the engine alone generates them, one by one
    assert got[0] == full[0][: full[0].index(stop)] and stop not in got[0]


def test_a_chat_model_stops_at_the_end_of_its_turn(tiny):
    model, tok = copy.deepcopy(tiny[0]), tiny[1]
    eot = tok.special_ids["end_of_turn"]
    context = "The river"
    prompt = [tok.bos_id, *tok.encode(context)]
    free = generate_ids(model, prompt, 12, temperature=0.0)[0]
    head = model.embed.weight if model.cfg.tie_embeddings else model.lm_head.weight  # (V, C)
    with torch.no_grad():  # make the end of turn the greedy choice where the 5th token was
        head[eot] = head[free[4]] * 1.5
    full = generate_ids(model, prompt, 12, temperature=0.0)[0]
    assert eot in full, "the test model must reach the end of turn"
    lm = LlmlabLM(model=model, tokenizer=tok, batch_size=2)
    got = lm.generate_until(requests("generate_until", [(context, {"max_gen_toks": 12})]))
    assert got == [tok.decode(full[: full.index(eot)])]


def test_chat_templates_render_the_models_own_format(tiny):
    from llmlab.tokenizer.chat import render_conversation, render_prompt

    model, tok = tiny
    lm = LlmlabLM(model=model, tokenizer=tok)
    chat = [{"role": "user", "content": "What is 2 + 2?"}, {"role": "assistant", "content": "4"},
            {"role": "user", "content": "And 3 + 3?"}]
    text = lm.apply_chat_template(chat)
    assert lm.tok_encode(text) == render_prompt(tok, chat)
    prefilled = lm.apply_chat_template(chat[:2], add_generation_prompt=False)
    assert lm.tok_encode(prefilled) == render_conversation(tok, chat[:2])[0]
    assert lm.chat_template(True) == "llmlab-llmlab" and lm.chat_template(False) is None


@pytest.mark.slow  # ~10-20 s: transformers and two HFLM instances
def test_same_scores_as_lm_evals_hf_model(tiny, tmp_path):
    """lm-eval's own Hugging Face backend on an HF export of the same model gives the same numbers."""
    pytest.importorskip("transformers")
    from lm_eval.models.huggingface import HFLM

    from llmlab.model.hf_format import export_hf

    model, tok = tiny
    export_hf(model, tok, tmp_path / "hf")
    ours = LlmlabLM(model=model, tokenizer=tok, batch_size=2)
    pairs = [("The river", " runs to the sea"), ("Old king ", "queen"), ("", "Light water")]
    text = [("The river runs to the sea. Old king and queen of the city. " * 2,)]
    for add_bos, kind, args in [(True, "loglikelihood", pairs), (False, "loglikelihood_rolling", text)]:
        # HFLM puts BOS before contexts only with add_bos_token, and then also before a rolling text (scoring BOS
        # after BOS); llmlab conditions on one BOS: the same choice of HFLM's flag gives the same tokens.
        theirs = HFLM(pretrained=str(tmp_path / "hf"), device="cpu", dtype="float32", batch_size=2,
                      add_bos_token=add_bos)
        got, expected = getattr(ours, kind)(requests(kind, args)), getattr(theirs, kind)(requests(kind, args))
        assert [x[0] if isinstance(x, tuple) else x for x in got] == pytest.approx(
            [x[0] if isinstance(x, tuple) else x for x in expected], abs=1e-3)


TASKS = {
    "tiny_mc": {
        "output_type": "multiple_choice",
        "doc_to_text": "{{question}}",
        "doc_to_choice": "{{choices}}",
        "doc_to_target": "answer",
        "metric_list": [{"metric": "acc"}],
    },
    "tiny_ppl": {
        "output_type": "loglikelihood_rolling",
        "doc_to_text": "",
        "doc_to_target": "{{question}}",
        "metric_list": [{"metric": "word_perplexity"}, {"metric": "bits_per_byte"}],
    },
    "tiny_gen": {
        "output_type": "generate_until",
        "doc_to_text": "{{question}}",
        "doc_to_target": "{{choices[answer]}}",
        "generation_kwargs": {"until": ["\n", "."], "max_gen_toks": 6, "do_sample": False},
        "metric_list": [{"metric": "exact_match"}],
    },
}
DOCS = [
    {"question": "The sun is", "choices": [" green", " bright", " old"], "answer": 1},
    {"question": "The river runs to the", "choices": [" sea", " king"], "answer": 0},
    {"question": "Old king and", "choices": [" queen", " water", " star"], "answer": 0},
]


@pytest.mark.slow  # ~5 s: lm-eval builds three tasks and their datasets
def test_simple_evaluate_runs_a_local_task_offline(tiny, tiny_tokenizer, tmp_path):
    from lm_eval.tasks import TaskManager

    from llmlab.model.folder import save_model_folder

    model, tok = tiny
    folder = tmp_path / "model"
    save_model_folder(folder, model, tiny_tokenizer)
    tasks = tmp_path / "tasks"
    tasks.mkdir()
    (tasks / "docs.jsonl").write_text("".join(json.dumps(d) + "\n" for d in DOCS), encoding="utf-8")
    for name, spec in TASKS.items():
        dataset = {"data_files": {"test": str(tasks / "docs.jsonl")}, "cache_dir": str(tmp_path / "hf_cache")}
        task = {"task": name, "dataset_path": "json", "dataset_kwargs": dataset, "test_split": "test", **spec}
        (tasks / f"{name}.yaml").write_text(json.dumps(task), encoding="utf-8")  # JSON is YAML

    out = lm_eval.simple_evaluate(
        model="llmlab",  # by its registered name, built from model_args as the command line does
        model_args=f"pretrained={folder},batch_size=2",
        tasks=list(TASKS),
        task_manager=TaskManager(include_path=str(tasks), include_defaults=False),
    )
    results = out["results"]
    chat = lm_eval.simple_evaluate(model="llmlab", model_args=f"pretrained={folder},batch_size=2",
                                   tasks=["tiny_gen"], apply_chat_template=True,
                                   task_manager=TaskManager(include_path=str(tasks), include_defaults=False))
    assert chat["results"]["tiny_gen"]["exact_match,none"] in (0.0, 1 / 3, 2 / 3, 1.0)  # it runs (it raised before)

    lm = LlmlabLM(model=model, tokenizer=tok)
    right = 0
    for doc in DOCS:
        # lm-eval asks for (context, target_delimiter + choice); its default delimiter is a space
        scores = lm.loglikelihood(requests("loglikelihood", [(doc["question"], " " + c) for c in doc["choices"]]))
        right += max(range(len(scores)), key=lambda i: scores[i][0]) == doc["answer"]
    assert results["tiny_mc"]["acc,none"] == pytest.approx(right / len(DOCS))

    logprobs = lm.loglikelihood_rolling(requests("loglikelihood_rolling", [(d["question"],) for d in DOCS]))
    n_bytes = sum(len(d["question"].encode()) for d in DOCS)
    bits_per_byte = -sum(logprobs) / n_bytes / torch.log(torch.tensor(2.0)).item()
    assert results["tiny_ppl"]["bits_per_byte,none"] == pytest.approx(bits_per_byte, rel=1e-4)
    assert 0.0 <= results["tiny_gen"]["exact_match,none"] <= 1.0
