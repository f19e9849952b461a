"""Tests of the inference engine (llmlab/engine) and `llmlab sample`. Run: `.venv/bin/pytest tests/test_engine.py`.

A one-block random model (output projections not zeroed, so attention matters) over the session's tiny tokenizer,
saved as a model folder once per module; everything runs in a few seconds on a CPU.
"""

from __future__ import annotations

import re

import pytest
import torch

from llmlab.cli.sample import sample
from llmlab.engine.generate import TextStream, generate, generate_ids, sample_next
from llmlab.errors import LlmlabError
from llmlab.model.config import ModelConfig
from llmlab.model.folder import load_model_folder, save_model_folder
from llmlab.model.transformer import Transformer
from llmlab.tokenizer.bpe import Tokenizer

SEQ_LEN = 64


@pytest.fixture(scope="module")
def tok(tiny_tokenizer) -> Tokenizer:
    return Tokenizer.load(tiny_tokenizer)


@pytest.fixture(scope="module")
def model(tok) -> Transformer:
    cfg = ModelConfig.from_depth(1, vocab_size=tok.vocab_size, seq_len=SEQ_LEN, zero_init_proj=False)
    return Transformer(cfg, seed=0).eval()


@pytest.fixture(scope="module")
def model_folder(tmp_path_factory, model, tiny_tokenizer):
    folder = tmp_path_factory.mktemp("models") / "tiny"
    save_model_folder(folder, model, tiny_tokenizer, meta={"stage": "base"})
    return folder


@pytest.fixture(scope="module")
def prompt(tok) -> list[int]:
    return [tok.bos_id, *tok.encode("The old king and the")]


def greedy_without_cache(model: Transformer, ids: list[int], n: int) -> list[int]:
    """Reference: n argmax steps, each re-running the whole sequence without a cache."""
    ids = list(ids)
    with torch.no_grad():
        for _ in range(n):
            logits, _ = model(torch.tensor([ids]))
            ids.append(int(logits[0, -1].argmax()))
    return ids[-n:]


def test_greedy_matches_full_forwards(model, prompt):
    [got] = generate_ids(model, prompt, 20, temperature=0)
    assert got == greedy_without_cache(model, prompt, 20)


def test_top_k_1_and_tiny_top_p_are_greedy(model, prompt):
    [greedy] = generate_ids(model, prompt, 15, temperature=0)
    assert generate_ids(model, prompt, 15, temperature=1.5, top_k=1, seed=3) == [greedy]
    assert generate_ids(model, prompt, 15, temperature=1.5, top_p=1e-6, seed=4) == [greedy]


def test_seeds(model, prompt, tok):
    def text(seed):
        return tok.decode(generate_ids(model, prompt, 30, temperature=1.0, seed=seed)[0])

    assert text(0) == text(0)
    assert text(0) != text(1)


def test_samples_are_independent_and_seeded(model, prompt):
    rows = generate_ids(model, prompt, 25, temperature=1.0, seed=5, num_samples=4)
    assert len(rows) == 4 and len({tuple(r) for r in rows}) == 4
    assert generate_ids(model, prompt, 25, temperature=1.0, seed=5, num_samples=4) == rows
    # Greedy rows from a shared prefill are all the single-sample greedy answer.
    greedy = generate_ids(model, prompt, 10, temperature=0)
    assert generate_ids(model, prompt, 10, temperature=0, num_samples=3) == greedy * 3


def test_stop_ids_stop_each_row(model, prompt):
    steps = list(generate(model, prompt, 40, temperature=1.0, seed=2, num_samples=3))
    stop = steps[2].tokens[0]  # make row 0's third token a stop id; other rows stop when (if) they draw it
    steps = list(generate(model, prompt, 40, temperature=1.0, seed=2, num_samples=3, stop_ids={stop}))
    for row in range(3):
        tokens = [s.tokens[row] for s in steps]
        if stop in tokens:
            at = tokens.index(stop)
            assert all(t is None for t in tokens[at + 1 :]) and all(t is not None for t in tokens[:at])
            assert [s.finish[row] for s in steps[at:]] == ["stop"] * (len(steps) - at)
    assert steps[2].tokens[0] == stop and steps[2].finish[0] == "stop"
    assert all(s.finish[0] is None for s in steps[:2])
    assert stop not in generate_ids(model, prompt, 40, temperature=1.0, seed=2, num_samples=3, stop_ids={stop})[0]


def test_length_limits(model, prompt):
    steps = list(generate(model, prompt, 7, temperature=0))
    assert len(steps) == 7 and [s.index for s in steps] == list(range(7))
    assert steps[-1].finish == ["length"] and all(s.finish == [None] for s in steps[:-1])
    assert list(generate(model, prompt, 0)) == []
    # The context ends generation cleanly: prompt + new tokens fed to the model never exceed seq_len.
    assert len(generate_ids(model, prompt, 1000, temperature=0)[0]) == SEQ_LEN - len(prompt) + 1


def test_long_prompt_is_left_truncated(model, tok):
    long_prompt = [tok.bos_id, *tok.encode("the river and the mountain " * 40)]
    assert len(long_prompt) > SEQ_LEN
    got = generate_ids(model, long_prompt, 5, temperature=0)
    assert got == [greedy_without_cache(model, long_prompt[-SEQ_LEN:], 1)]  # room for exactly one token
    room = long_prompt[-(SEQ_LEN - 9) :]
    assert generate_ids(model, room, 10, temperature=0) == [greedy_without_cache(model, room, 10)]


def test_return_top(model, prompt):
    steps = list(generate(model, prompt, 5, temperature=0, return_top=4))
    with torch.no_grad():
        probs = model(torch.tensor([prompt]))[0][0, -1].softmax(-1)
    first = steps[0].top[0]
    assert [i for i, _ in first] == probs.topk(4).indices.tolist()
    assert [p for _, p in first] == pytest.approx(probs.topk(4).values.tolist(), rel=1e-5)
    assert steps[0].tokens[0] == first[0][0]  # greedy picks the most likely
    assert all(s.top == [[]] for s in generate(model, prompt, 3))


def test_sample_next_filters():
    logits = torch.tensor([[3.0, 2.0, 1.0, 0.0, -1.0]]).repeat(2000, 1)  # (2000, 5)
    gen = torch.Generator().manual_seed(0)
    assert sample_next(logits, temperature=0).unique().tolist() == [0]
    assert set(sample_next(logits, 1.0, top_k=2, generator=gen).unique().tolist()) == {0, 1}
    # probabilities 0.64, 0.24, 0.09, ...: top_p 0.8 keeps the first two (0.64 < 0.8 <= 0.88)
    assert set(sample_next(logits, 1.0, top_p=0.8, generator=gen).unique().tolist()) == {0, 1}
    assert set(sample_next(logits, 1.0, generator=gen).unique().tolist()) == {0, 1, 2, 3, 4}
    for bad in ({"temperature": -1.0}, {"top_k": 0}, {"top_p": 0.0}, {"top_p": 1.5}):
        with pytest.raises(LlmlabError):
            sample_next(logits, **{"temperature": 1.0, **bad})


def test_constant_logits_sample_uniformly(tok):
    cfg = ModelConfig.from_depth(1, vocab_size=tok.vocab_size, seq_len=SEQ_LEN)
    flat = Transformer(cfg)
    with torch.no_grad():
        for p in flat.parameters():
            p.zero_()
    rows = generate_ids(flat, [tok.bos_id], 20, temperature=1.0, seed=0, num_samples=100)
    counts = torch.bincount(torch.tensor(rows).flatten(), minlength=tok.vocab_size).float()  # 2000 draws
    assert (counts > 0).sum() > 0.9 * tok.vocab_size * (1 - (1 - 1 / tok.vocab_size) ** 2000)
    assert counts.max() < 25  # expected 2000 / vocab ~ 5 per token


def test_bad_inputs(model, prompt):
    with pytest.raises(LlmlabError, match="at least one prompt token"):
        list(generate(model, [], 5))
    with pytest.raises(LlmlabError, match="outside the model's vocabulary"):
        list(generate(model, [model.cfg.vocab_size], 5))
    with pytest.raises(LlmlabError, match="temperature"):
        list(generate(model, prompt, 5, temperature=-1))


def test_text_stream_holds_split_characters(tok):
    text = "Héllo wörld — 東京 🙂 naïve café"
    for ids in (tok.encode(text), [tok.encoding.encode_single_token(bytes([b])) for b in text.encode("utf-8")]):
        stream = TextStream(tok)
        pieces = [stream.push(i) for i in ids]
        assert "".join(pieces) + stream.flush() == text
    assert pieces[text.encode("utf-8").index("東".encode("utf-8"))] == ""  # byte by byte: the first byte is held
    stream = TextStream(tok)
    assert stream.push(tok.encoding.encode_single_token(b"\xe6")) == "" and stream.flush() == "\ufffd"


def test_sample_cli_streams_text(model_folder, capsys):
    sample(model=model_folder, prompt="The king", max_tokens=12, seed=1)
    out = capsys.readouterr().out
    assert out.startswith("The king") and len(out) > len("The king\n")
    sample(model=model_folder, prompt="The king", max_tokens=12, seed=1)
    assert capsys.readouterr().out == out
    sample(model=model_folder, prompt="", max_tokens=8, num_samples=2, temperature=0)
    assert capsys.readouterr().out.count("--- sample") == 2


def test_sample_cli_truncates_long_prompts(model_folder, capsys, caplog):
    long_prompt = "the river and the mountain " * 40
    sample(model=model_folder, prompt=long_prompt, max_tokens=10, temperature=0)
    assert capsys.readouterr().out.startswith(long_prompt)
    assert f"keeping its last {SEQ_LEN - 9} tokens" in caplog.text
    sample(model=model_folder, prompt=long_prompt, max_tokens=500, temperature=0)
    assert f"keeping its last {SEQ_LEN // 2} tokens" in caplog.text


def test_sample_cli_show_next(model_folder, capsys):
    sample(model=model_folder, prompt="The", max_tokens=6, show_next=5, temperature=0)
    lines = [line for line in capsys.readouterr().out.splitlines() if line.strip()]
    candidate_lines = [line for line in lines if " | " in line]
    chosen = [line.strip() for line in lines if line.strip().startswith("->")]
    assert len(candidate_lines) == len(chosen) >= 1
    for line in candidate_lines:
        probs = [float(p) for p in re.findall(r" (\d\.\d{3})(?= \||$)", line)]
        assert len(probs) == 5 and sum(probs) <= 1.0 + 1e-3 and probs == sorted(probs, reverse=True)
    with pytest.raises(LlmlabError):
        sample(model=model_folder, show_next=3, num_samples=2)


def test_sample_cli_parses_options(model_folder, capsys):
    from jsonargparse import CLI

    CLI(sample, args=["--model", str(model_folder), "--max_tokens", "3", "--top_k", "null", "--top_p", "0.9"])
    assert capsys.readouterr().out


def test_loaded_model_generates_like_the_original(model, model_folder, prompt):
    loaded, _, _ = load_model_folder(model_folder)
    options = dict(temperature=0.9, seed=8)
    assert generate_ids(loaded, prompt, 10, **options) == generate_ids(model, prompt, 10, **options)


def test_batched_rows_equal_single_generation(model, prompt):
    """Several samples decoded as one batch give, row for row, what each gives alone (greedy: all equal)."""
    single = generate_ids(model, prompt, 12, temperature=0.0)[0]
    batched = generate_ids(model, prompt, 12, temperature=0.0, num_samples=4)
    assert batched == [single] * 4


def test_stop_strings_end_a_row_at_the_completing_token(prompt, tok):
    from llmlab.engine.generate import cut_at_stop

    cfg = ModelConfig.from_depth(1, vocab_size=tok.vocab_size, seq_len=SEQ_LEN, zero_init_proj=False)
    for seed in range(50):  # a random model whose greedy text is plain ASCII, so a stop string can be cut from it
        model = Transformer(cfg, seed=seed).eval()
        free = generate_ids(model, prompt, 10, temperature=0.0)[0]
        if all(tok.token_bytes(t).isascii() and t not in tok.special_ids.values() for t in free[:5]):
            break
    else:
        pytest.fail("no small random model with plain-ASCII greedy text among 50 seeds")
    text = tok.decode(free)
    stop = tok.decode(free[3:5])  # reached with the 5th token (or earlier, if it occurs before)
    steps = list(generate(model, prompt, 10, temperature=0.0, stop_strings=[stop], tokenizer=tok))
    assert steps[-1].finish == ["stop"] and len(steps) <= 5
    produced = tok.decode([s.tokens[0] for s in steps])
    assert stop in produced and cut_at_stop(produced, [stop]) == text[: text.find(stop)]
    with pytest.raises(LlmlabError, match="need the tokenizer"):
        list(generate(model, prompt, 3, stop_strings=["x"]))


def test_generation_flops_count_what_the_engine_multiplies():
    """The matrix-multiply part against torch's FLOP counter on a real generation (the counter does not see CPU
    attention kernels, so that part is the formula's: 4 * layers * d_model per attended position)."""
    from torch.utils.flop_counter import FlopCounterMode

    from llmlab.model.flops import generation_flops

    cfg = ModelConfig.preset("default", 2, vocab_size=100, seq_len=64, d_model=32, n_heads=2)
    model = Transformer(cfg).eval()
    for prompt, new in [(1, 10), (8, 5), (20, 1)]:
        with FlopCounterMode(display=False) as counter:
            assert len(generate_ids(model, list(range(1, prompt + 1)), new, temperature=0.0)[0]) == new
        fed = prompt + new - 1
        attention = sum(4 * cfg.depth * cfg.d_model * t for t in range(1, fed + 1))
        assert generation_flops(cfg, prompt, new) == counter.get_total_flops() + attention
    assert generation_flops(cfg, 5, 0) == 0.0
