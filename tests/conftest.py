"""Shared fixtures: tiny corpora written to temporary folders, and a small tokenizer trained once per session."""

from __future__ import annotations

import random
from pathlib import Path

import pytest

WORDS = (
    "the a river mountain city people language music history science light water animal plant king queen war "
    "peace book story house road ship star sun moon winter summer green red old new small great early modern"
).split()


def make_text(rng: random.Random, n_words: int) -> str:
    """Plausible-looking English-ish text: sentences of random common words."""
    out, sentence = [], []
    for _ in range(n_words):
        sentence.append(rng.choice(WORDS))
        if len(sentence) >= rng.randint(6, 14):
            out.append(" ".join(sentence).capitalize() + ".")
            sentence = []
    if sentence:
        out.append(" ".join(sentence).capitalize() + ".")
    return " ".join(out)


@pytest.fixture(scope="session")
def tiny_tokenizer(tmp_path_factory) -> Path:
    """A 400-token BPE trained on generated text (fast); returns its folder."""
    from llmlab.tokenizer.bpe import train_tokenizer

    rng = random.Random(0)
    texts = [make_text(rng, 200) for _ in range(200)] + ["Héllo wörld — 東京 🙂 naïve café"] * 5
    folder = tmp_path_factory.mktemp("tok") / "tokenizer"
    train_tokenizer(texts, vocab_size=400, out_dir=folder)
    return folder


@pytest.fixture(scope="session")
def tiny_run(tmp_path_factory, tiny_tokenizer) -> Path:
    """A run directory with the tiny tokenizer and prepared token shards of ~300 generated documents."""
    import json
    import shutil

    from llmlab.pipeline.prepare import prepare
    from llmlab.data.prepare import PrepareConfig

    root = tmp_path_factory.mktemp("run")
    rng = random.Random(1)
    with open(root / "docs.jsonl", "w", encoding="utf-8") as f:
        for _ in range(300):
            f.write(json.dumps({"text": make_text(rng, rng.randint(60, 200))}) + "\n")
    run = root / "run"
    shutil.copytree(tiny_tokenizer, run / "tokenizer")
    prepare(run_dir=run, data=PrepareConfig(sources=[f"jsonl:{root / 'docs.jsonl'}"], workers=1))
    return run


FACTS = [("red", "apple"), ("green", "grass"), ("blue", "sky"), ("white", "snow"), ("black", "night"), ("yellow", "sun")]


def chat(color: str, thing: str) -> dict:
    return {"messages": [{"role": "user", "content": f"What is {color}?"}, {"role": "assistant", "content": f"The {thing}."}]}


@pytest.fixture()
def sft_run(tmp_path, tiny_tokenizer) -> Path:
    """A run with a small random base model and chat files tmp_path/{train,val}.jsonl (val: two of the facts)."""
    import json

    from llmlab.model.config import ModelConfig
    from llmlab.model.folder import save_model_folder
    from llmlab.model.transformer import Transformer
    from llmlab.tokenizer.bpe import Tokenizer

    tok = Tokenizer.load(tiny_tokenizer)
    cfg = ModelConfig.from_depth(1, vocab_size=tok.vocab_size, seq_len=48, d_model=32, n_heads=2)
    run = tmp_path / "run"
    save_model_folder(run / "base", Transformer(cfg), tiny_tokenizer, {"stage": "base"})
    for name, facts in (("train", FACTS), ("val", FACTS[:2])):
        with open(tmp_path / f"{name}.jsonl", "w", encoding="utf-8") as f:
            for color, thing in facts:
                f.write(json.dumps(chat(color, thing)) + "\n")
    return run


@pytest.fixture()
def scripted_replies(monkeypatch):
    """install(tok, reply): every chat answer the evaluations generate (llmlab.eval.context's complete_all) becomes
    reply(prompt ids as a tuple), ended like a trained model's turn, or cut at the request's token budget when the
    text and its end of turn do not fit: the evaluations' scoring end to end, without training a model."""
    from llmlab.engine.batching import Completion

    def install(tok, reply) -> None:
        def complete_all(model, requests, tokenizer=None, max_batch=64):
            out = []
            for request in requests:
                ids = tok.encode(reply(tuple(request.prompt_ids)))
                fits = len(ids) < request.max_new_tokens  # room for the text and its end-of-turn token
                out.append(Completion(ids, "stop") if fits else Completion(ids[: request.max_new_tokens], "length"))
            return out

        monkeypatch.setattr("llmlab.eval.context.complete_all", complete_all)

    return install
