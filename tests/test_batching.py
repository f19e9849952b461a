"""Tests for per-row KV caches (each row at its own position) and the continuous-batching engine.

Tiny random models (width 32, vocab 64) with non-zero projections, so attention really contributes.
"""

from __future__ import annotations

import queue
import time

import pytest
import torch

from llmlab.engine.batching import BatchEngine, EngineBusy, Event, Request, complete_all
from llmlab.engine.generate import generate_ids
from llmlab.errors import LlmlabError
from llmlab.model.config import ModelConfig
from llmlab.model.transformer import Transformer

V, T_MAX = 64, 32


def tiny(**overrides) -> ModelConfig:
    fields = {"vocab_size": V, "seq_len": T_MAX, "d_model": 32, "n_heads": 4, "zero_init_proj": False, **overrides}
    return ModelConfig.preset("default", 2, **fields)


VARIANTS = {"rope_gqa": tiny(n_kv_heads=2), "learned": tiny(pos_embedding="learned")}


def tokens(B: int, T: int, seed: int = 0) -> torch.Tensor:
    return torch.randint(0, V, (B, T), generator=torch.Generator().manual_seed(seed))


# ---- per-row KV cache ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", VARIANTS)
@torch.no_grad()
def test_per_row_cache_matches_full_forward(name):
    """Rows prefilled one at a time with different lengths, then decoded together, give the full forward's logits."""
    model = Transformer(VARIANTS[name])
    lengths, n_new = [3, 7, 5], 6
    seqs = [tokens(1, n + n_new, seed=i)[0] for i, n in enumerate(lengths)]
    cache = model.make_kv_cache(batch_size=4, per_row=True)
    # a stale occupant in row 1: its slots must be overwritten or masked, never seen
    cache.rows = slice(1, 2)
    model(tokens(1, 12, seed=9), kv_cache=cache)
    cache.pos[1] = 0
    for row, (seq, n) in enumerate(zip(seqs, lengths)):
        cache.rows = slice(row, row + 1)
        prefill, _ = model(seq[None, :n], kv_cache=cache)
        torch.testing.assert_close(prefill, model(seq[None, :n])[0], atol=1e-5, rtol=0)
    cache.rows = slice(0, 3)
    steps = []
    for t in range(n_new):
        step = torch.stack([seq[n + t] for seq, n in zip(seqs, lengths)])[:, None]  # (3, 1)
        steps.append(model(step, kv_cache=cache)[0][:, 0])  # (3, V)
    assert cache.pos.tolist() == [n + n_new for n in lengths] + [0]
    for row, (seq, n) in enumerate(zip(seqs, lengths)):
        full, _ = model(seq[None])
        got = torch.stack([s[row] for s in steps])  # (n_new, V)
        torch.testing.assert_close(got, full[0, n:], atol=1e-5, rtol=0)


@torch.no_grad()
def test_per_row_chunk_and_move_row():
    """Several tokens at once on rows at different positions; a row moved to another slot goes on unchanged."""
    model = Transformer(VARIANTS["rope_gqa"])
    a, b = tokens(1, 12, seed=1)[0], tokens(1, 12, seed=2)[0]
    cache = model.make_kv_cache(batch_size=3, per_row=True)
    for row, (seq, n) in enumerate([(a, 4), (b, 7)]):
        cache.rows = slice(row, row + 1)
        model(seq[None, :n], kv_cache=cache)
    cache.rows = slice(0, 2)
    chunk, _ = model(torch.stack([a[4:7], b[7:10]]), kv_cache=cache)  # (2, 3, V)
    torch.testing.assert_close(chunk[0], model(a[None, :7])[0][0, 4:], atol=1e-5, rtol=0)
    torch.testing.assert_close(chunk[1], model(b[None, :10])[0][0, 7:], atol=1e-5, rtol=0)
    cache.move_row(1, 2)
    cache.rows = slice(2, 3)
    nxt, _ = model(b[None, 10:11], kv_cache=cache)
    torch.testing.assert_close(nxt[0, 0], model(b[None, :11])[0][0, 10], atol=1e-5, rtol=0)


@torch.no_grad()
def test_per_row_cache_errors():
    model = Transformer(VARIANTS["rope_gqa"])
    cache = model.make_kv_cache(batch_size=2, max_len=8, per_row=True)
    with pytest.raises(LlmlabError, match="does not match"):
        model(tokens(1, 2), kv_cache=cache)  # two rows selected
    cache.rows = slice(0, 1)
    model(tokens(1, 6), kv_cache=cache)
    with pytest.raises(LlmlabError, match="overflow"):
        model(tokens(1, 3), kv_cache=cache)
    with pytest.raises(LlmlabError, match="no targets"):
        model(tokens(1, 1), targets=tokens(1, 1), kv_cache=cache)
    cache.reset()
    assert cache.pos.tolist() == [0, 0]


# ---- the continuous-batching engine -------------------------------------------------------------------------------

@pytest.fixture()
def engine():
    """A started engine on a tiny random model, max 4 rows; stopped after the test."""
    eng = BatchEngine(Transformer(VARIANTS["rope_gqa"]), max_batch=4)
    eng.start()
    yield eng
    eng.stop()


def run_all(engine: BatchEngine, requests: list[Request]) -> list[tuple[list[int], str]]:
    """Submit every request at once; each one's (tokens, finish) once all are done."""
    queues = [queue.Queue() for _ in requests]
    for req, q in zip(requests, queues):
        engine.submit(req, q.put)
    results = []
    for q in queues:
        toks = []
        while True:
            event: Event = q.get(timeout=30)
            assert event.error is None, event.error
            toks.append(event.token)
            if event.finish:
                results.append((toks, event.finish))
                break
    return results


def prompts(n: int) -> list[list[int]]:
    return [tokens(1, 2 + 3 * i, seed=10 + i)[0].tolist() for i in range(n)]


def test_greedy_same_alone_batched_and_as_generate(engine):
    reqs = [Request(p, max_new_tokens=5 + i, temperature=0) for i, p in enumerate(prompts(6))]  # 6 > max_batch
    batched = run_all(engine, reqs)
    alone = [run_all(engine, [r])[0] for r in reqs]
    assert batched == alone
    for req, (toks, finish) in zip(reqs, batched):
        assert (len(toks), finish) == (req.max_new_tokens, "length")
        assert toks == generate_ids(engine.model, req.prompt_ids, req.max_new_tokens, temperature=0)[0]


def test_seeded_sampling_independent_of_batch(engine):
    reqs = [Request(p, max_new_tokens=6, temperature=1.0, top_k=20, seed=i) for i, p in enumerate(prompts(4))]
    batched = run_all(engine, reqs)
    assert batched == [run_all(engine, [r])[0] for r in reqs]
    assert batched[0] != run_all(engine, [Request(reqs[0].prompt_ids, 6, temperature=1.0, top_k=20, seed=99)])[0]


def test_stops_and_context_limit(engine):
    prompt = prompts(1)[0]
    free, _ = run_all(engine, [Request(prompt, max_new_tokens=8, temperature=0)])[0]
    stop_id = free[3]
    toks, finish = run_all(engine, [Request(prompt, 8, temperature=0, stop_ids={stop_id})])[0]
    assert (toks, finish) == (free[: free.index(stop_id) + 1], "stop")  # the stop token is reported, then done
    long_prompt = tokens(1, T_MAX - 2, seed=3)[0].tolist()
    toks, finish = run_all(engine, [Request(long_prompt, 50, temperature=0)])[0]
    assert (len(toks), finish) == (3, "length")  # the context's room: T_MAX - len(prompt) + 1
    with pytest.raises(LlmlabError, match="context holds"):
        engine.submit(Request(tokens(1, T_MAX + 1)[0].tolist(), 4), print)
    with pytest.raises(LlmlabError, match="temperature"):
        engine.submit(Request(prompt, 4, temperature=-1), print)
    with pytest.raises(LlmlabError, match="tokenizer"):
        engine.submit(Request(prompt, 4, stop_strings=["x"]), print)


def test_complete_all_runs_every_request_in_order_like_generate():
    model = Transformer(VARIANTS["rope_gqa"])
    greedy = [Request(p, max_new_tokens=5 + i, temperature=0) for i, p in enumerate(prompts(6))]
    sampled = [Request(p, max_new_tokens=6, temperature=1.0, top_k=20, seed=i) for i, p in enumerate(prompts(3))]
    long_prompt = Request(tokens(1, T_MAX + 5, seed=4)[0].tolist(), 50, temperature=0)  # longer than the context
    done = complete_all(model, greedy + sampled + [long_prompt], max_batch=4)
    for req, c in zip(greedy, done):
        assert (c.tokens, c.finish) == (generate_ids(model, req.prompt_ids, req.max_new_tokens, temperature=0)[0],
                                        "length")
    assert [c.tokens for c in done[6:9]] == [c.tokens for c in complete_all(model, sampled[::-1], max_batch=2)][::-1]
    expected = generate_ids(model, long_prompt.prompt_ids, 50, temperature=0)[0]  # keeps the last T_MAX tokens
    assert (done[9].tokens, done[9].finish) == (expected, "length") and len(expected) == 1
    stop_id = done[0].tokens[2]
    c = complete_all(model, [Request(greedy[0].prompt_ids, 5, temperature=0, stop_ids={stop_id})])[0]
    assert (c.tokens, c.finish) == (done[0].tokens[: done[0].tokens.index(stop_id)], "stop")  # stop id left out
    assert complete_all(model, []) == []


def test_logprobs_are_the_models_own_for_the_tokens_drawn():
    model = Transformer(VARIANTS["rope_gqa"])
    prompt = prompts(3)[1]
    done = complete_all(model, [Request(prompt, 6, temperature=0.8, top_k=5, seed=3, logprobs=True),
                                Request(prompt, 6, temperature=0.8, top_k=5, seed=3)])
    assert done[0].tokens == done[1].tokens and done[1].logprob is None
    ids = torch.tensor([prompt + done[0].tokens])
    with torch.no_grad():
        logp = model(ids)[0][0, len(prompt) - 1 : -1].log_softmax(-1)  # (6, V): the positions that predicted them
    expected = float(logp.gather(1, torch.tensor(done[0].tokens)[:, None]).sum())
    assert done[0].logprob == pytest.approx(expected, abs=1e-4)
    events = []
    engine = BatchEngine(model, max_batch=2)
    engine.start()
    try:
        done_flag = queue.Queue()
        engine.submit(Request(prompt, 3, temperature=0, top_logprobs=4),
                      lambda e: (events.append(e), e.finish and done_flag.put(1)))
        done_flag.get(timeout=30)
    finally:
        engine.stop()
    first = logp[0].topk(4)  # the greedy run's first step has the same logits as the sampled one's
    assert [t for t, _ in events[0].top_logprobs] == first.indices.tolist()
    assert [v for _, v in events[0].top_logprobs] == pytest.approx(first.values.tolist(), abs=1e-4)
    assert events[0].token == first.indices[0] and events[0].logprob == pytest.approx(float(first.values[0]), abs=1e-4)


def test_requests_with_one_prompt_share_its_prefill(monkeypatch):
    model = Transformer(VARIANTS["learned"])
    prompt = prompts(3)[2]
    reqs = [Request(prompt, 6, temperature=0)] + [Request(prompt, 6, temperature=1.0, seed=s) for s in range(5)]
    alone = [complete_all(model, [r])[0] for r in reqs]
    prefills = []
    forward = model.forward
    monkeypatch.setattr(model, "forward", lambda idx, **kw: (prefills.append(idx.shape) if idx.shape[1] > 1 else None,
                                                             forward(idx, **kw))[1])
    assert complete_all(model, reqs, max_batch=4) == alone  # 4 rows: two prefills of 3 + 3 requests
    assert len(prefills) == 2 and len({tuple(c.tokens) for c in alone[1:]}) > 1


def test_stop_strings(tiny_tokenizer):
    from llmlab.tokenizer.bpe import Tokenizer

    tok = Tokenizer.load(tiny_tokenizer)
    eng = BatchEngine(Transformer(tiny(vocab_size=tok.vocab_size)), tokenizer=tok, max_batch=2)
    eng.start()
    try:
        prompt = tok.encode("the river")
        free, _ = run_all(eng, [Request(prompt, 12, temperature=0)])[0]
        text = tok.decode(free)
        stop = text[len(text) // 2 : len(text) // 2 + 2]
        toks, finish = run_all(eng, [Request(prompt, 12, temperature=0, stop_strings=[stop])])[0]
        assert finish == "stop" and stop in tok.decode(toks) and stop not in tok.decode(toks[:-1])
    finally:
        eng.stop()


def test_cancel_frees_row_and_failing_callback_is_dropped(engine):
    got = queue.Queue()

    def cancel_after_first(event):
        got.put(event)
        ticket.cancel()

    ticket = engine.submit(Request(prompts(1)[0], max_new_tokens=T_MAX, temperature=0), cancel_after_first)

    def broken(event):
        raise RuntimeError("client gone")

    engine.submit(Request(prompts(2)[1], max_new_tokens=T_MAX, temperature=0), broken)
    toks, finish = run_all(engine, [Request(prompts(1)[0], 4, temperature=0)])[0]  # still serving
    assert len(toks) == 4 and got.qsize() == 1
    for _ in range(100):
        if engine.load == {"active": 0, "waiting": 0}:
            break
        time.sleep(0.05)
    assert engine.load == {"active": 0, "waiting": 0}


def test_busy_and_shutdown():
    eng = BatchEngine(Transformer(VARIANTS["rope_gqa"]), max_batch=1, max_waiting=2)
    events = queue.Queue()
    for _ in range(3):  # one for the free row, two waiting
        eng.submit(Request([1, 2], 4), events.put)
    with pytest.raises(EngineBusy, match="rows are busy"):
        eng.submit(Request([1, 2], 4), events.put)
    eng.start()
    eng.stop()
    finishes = [events.get(timeout=5) for _ in range(events.qsize())]
    assert all(e.finish in (None, "length", "error") for e in finishes)
    with pytest.raises(EngineBusy, match="shutting down"):
        eng.submit(Request([1, 2], 4), events.put)


def test_sample_rows_mixes_settings_per_row(engine):
    """Greedy rows, top_k=1 rows and tiny-top_p rows all give the argmax; a hot row follows its own seed only."""
    p = prompts(1)[0]
    greedy = run_all(engine, [Request(p, 6, temperature=0)])[0]
    mixed = run_all(engine, [Request(p, 6, temperature=0), Request(p, 6, temperature=1.5, top_k=1, seed=1),
                             Request(p, 6, temperature=1.5, top_p=1e-6, seed=2),
                             Request(p, 6, temperature=1.5, seed=3)])
    assert mixed[:3] == [greedy] * 3
    assert mixed[3] == run_all(engine, [Request(p, 6, temperature=1.5, seed=3)])[0]


def test_failing_step_fails_its_requests_and_engine_goes_on(engine, monkeypatch):
    real = engine.model.forward
    calls = {"n": 0}

    def flaky(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 1:
            raise RuntimeError("out of memory")
        return real(*args, **kwargs)

    monkeypatch.setattr(engine.model, "forward", flaky)
    q = queue.Queue()
    engine.submit(Request(prompts(1)[0], 4, temperature=0), q.put)
    event = q.get(timeout=10)
    assert event.finish == "error" and "out of memory" in event.error
    toks, finish = run_all(engine, [Request(prompts(1)[0], 4, temperature=0)])[0]
    assert (len(toks), finish) == (4, "length")


def test_chunked_prefill_gives_the_same_tokens():
    """Prompts fed 3 tokens per step, between the decode steps of the others, give generate()'s greedy tokens."""
    eng = BatchEngine(Transformer(VARIANTS["rope_gqa"]), max_batch=3, prefill_chunk=3)
    eng.start()
    try:
        reqs = [Request(p, max_new_tokens=6, temperature=0) for p in prompts(5)]
        for req, (toks, finish) in zip(reqs, run_all(eng, reqs)):
            assert toks == generate_ids(eng.model, req.prompt_ids, 6, temperature=0)[0]
    finally:
        eng.stop()
