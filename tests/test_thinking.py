"""k attempts per problem through the batching engine: batched samples equal sequential ones at temperature 0,
seeded samples reproducible, answers checked by the task, FLOPs counted once per shared prefill."""

from __future__ import annotations

import pytest
import torch

from llmlab.engine import thinking
from llmlab.engine.batching import Completion
from llmlab.engine.generate import generate_ids
from llmlab.engine.thinking import attempt, question_ids
from llmlab.errors import LlmlabError
from llmlab.model.config import ModelConfig
from llmlab.model.flops import generation_flops
from llmlab.model.transformer import Transformer
from llmlab.tasks import get_task
from llmlab.tokenizer.bpe import Tokenizer


@pytest.fixture(scope="module")
def tiny(tiny_tokenizer):
    tok = Tokenizer.load(tiny_tokenizer)
    cfg = ModelConfig.from_depth(2, vocab_size=tok.vocab_size, seq_len=256, d_model=32, n_heads=2, zero_init_proj=False)
    return Transformer(cfg, seed=1).eval(), tok


def test_greedy_attempts_are_what_generate_gives_one_by_one(tiny):
    model, tok = tiny
    task = get_task("addition")
    problems = task.problems(2, "test", 5)
    tries = attempt(model, tok, task, problems, k=1, temperature=0.0, max_tokens=12)
    end = tok.special_ids["end_of_turn"]
    for problem, (only,) in zip(problems, tries):
        ids = generate_ids(model, question_ids(tok, task, problem, chat=True), 12, temperature=0.0, stop_ids={end})[0]
        assert only.text == tok.decode(ids).strip() and only.right == task.check(problem, only.text)


def test_sampled_attempts_are_seeded_and_costed(tiny):
    model, tok = tiny
    task = get_task("countdown")
    problems = task.problems(3, "test", 3)
    a = attempt(model, tok, task, problems, k=4, temperature=1.0, max_tokens=10, seed=7)
    assert a == attempt(model, tok, task, problems, k=4, temperature=1.0, max_tokens=10, seed=7)
    assert a != attempt(model, tok, task, problems, k=4, temperature=1.0, max_tokens=10, seed=8)
    assert len({x.text for x in a[0]}) > 1 and all(x.logprob < 0 for row in a for x in row)
    for problem, row in zip(problems, a):
        prompt = len(question_ids(tok, task, problem, chat=True))
        prefill = generation_flops(model.cfg, prompt, 1)
        expected = prefill + sum(generation_flops(model.cfg, prompt, x.tokens) - prefill for x in row)
        assert sum(x.flops for x in row) == pytest.approx(expected)
        assert sum(x.flops for x in row) < sum(generation_flops(model.cfg, prompt, x.tokens) for x in row)


def test_right_answers_are_recognised(tiny, monkeypatch):
    model, tok = tiny
    task = get_task("word_problems")
    problems = task.problems(2, "test", 4)
    by_prompt = {tuple(question_ids(tok, task, p, chat=True)): p for p in problems}

    def scripted(model, requests, tokenizer=None, max_batch=64):
        out = []
        for r in requests:
            p = by_prompt[tuple(r.prompt_ids)]
            text = task.solution(p) if problems.index(p) % 2 == 0 else "#### 0"
            out.append(Completion(tok.encode(text), "stop", -1.5))
        return out

    monkeypatch.setattr(thinking, "complete_all", scripted)
    tries = attempt(model, tok, task, problems, k=2, temperature=0.7)
    assert [[x.right for x in row] for row in tries] == [[True, True], [False, False]] * 2
    assert tries[0][0].answer == problems[0].answer and tries[1][0].answer == "0"


def test_greedy_means_one_attempt(tiny):
    model, tok = tiny
    with pytest.raises(LlmlabError, match="greedy decoding gives one attempt"):
        attempt(model, tok, get_task("addition"), get_task("addition").problems(2, "test", 1), k=4, temperature=0)


def test_step_search_keeps_the_lines_the_verifier_prefers(tiny, monkeypatch):
    """A scripted model writes one of two first lines, then ends; a scripted verifier likes lines with "good": the
    search returns a solution starting with the good line, and counts its FLOPs."""
    from llmlab.engine.thinking import step_search

    model, tok = tiny
    task = get_task("addition")
    problem = task.problems(2, "test", 1)[0]
    prompt = question_ids(tok, task, problem, chat=True)

    def scripted(model, requests, tokenizer=None, max_batch=64):
        out = []
        for r in requests:
            written = tok.decode(r.prompt_ids[len(prompt):])
            if not written:  # the first line: good or bad by the seed's parity
                text, finish = ("good start\n" if r.seed % 2 else "bad start\n"), "stop"
            else:
                text, finish = f"#### {problem.answer}", "stop"  # then the answer, and the turn ends (stop id)
            out.append(Completion(tok.encode(text), finish, -1.0))
        return out

    class Verifier(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.lm, self.head = model, torch.nn.Linear(1, 1)

        def forward(self, ids):
            texts = [tok.decode(row.tolist()) for row in ids]
            return torch.tensor([[1.0 if "good" in t else -1.0] * ids.shape[1] for t in texts])

    monkeypatch.setattr(thinking, "complete_all", scripted)
    best = step_search(model, Verifier(), tok, task, problem, beams=2, expand=2)
    assert best.text.startswith("good start") and best.right and best.logprob == -2.0 and best.flops > 0
