"""Many attempts at checkable problems: k solutions per problem, sampled as rows of shared batches, each parsed,
checked and costed in FLOPs; what the System 2 strategies (majority vote, best-of-N, search) choose from.

    from llmlab.engine.thinking import attempt
    from llmlab.tasks import get_task
    task = get_task("word_problems")
    problems = task.problems(level=3, split="test", n=100)
    tries = attempt(model, tok, task, problems, k=16, temperature=0.7, seed=0)   # tries[i]: problem i's k Attempts
    tries[0][0].answer, tries[0][0].right, tries[0][0].logprob, tries[0][0].flops
    scores, flops = verifier_scores(verifier, tok, task, problems[0], tries[0])   # a trained verifier's log-odds

The question is asked as the user's turn of a chat model (the chat template), or as plain text after BOS for a base
model, whose solution ends at a blank line or a document boundary. Compute is counted honestly
(llmlab.model.flops.generation_flops): a problem's prompt is prefilled once for all its k samples (the engine copies
the prefilled cache, so that is what runs), and each sample adds its own decode; the prefill is split evenly over the
problem's attempts.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from llmlab.engine.batching import Request, complete_all
from llmlab.engine.generate import cut_at_stop
from llmlab.errors import LlmlabError
from llmlab.model.flops import generation_flops, scoring_flops
from llmlab.tasks.base import Problem, Task, final_answer
from llmlab.tokenizer.chat import render_prompt

TEXT_STOPS = ("\n\n",)  # a base model's solution ends at the paragraph's end


@dataclass(frozen=True)
class Attempt:
    """One solution: its text, final answer (None if it gave none), the checker's verdict, its length in tokens,
    its log-probability under the model (summed over its tokens) and the FLOPs it cost."""

    text: str
    answer: str | None
    right: bool
    tokens: int
    logprob: float
    flops: float


def question_ids(tok, task: Task, problem: Problem, chat: bool) -> list[int]:
    """The prompt a model is asked: the user's turn of a chat, or the question as a document's opening line."""
    if chat:
        return render_prompt(tok, [{"role": "user", "content": task.prompt(problem)}])
    return [tok.bos_id] * tok.add_bos + tok.encode(task.prompt(problem) + "\n")


def solution_ids(tok, task: Task, problem: Problem, text: str, chat: bool, max_len: int) -> tuple[list[int], int]:
    """(prompt + solution ids cut to max_len, where the solution starts): a solution as its writer produced it (the
    chat's end of turn after it), which is how a verifier reads it."""
    prompt = question_ids(tok, task, problem, chat)
    ids = (prompt + tok.encode(text) + ([tok.special_ids["end_of_turn"]] if chat else []))[:max_len]
    if len(prompt) >= len(ids):
        raise LlmlabError(f"a prompt of {len(prompt)} tokens leaves no room for its solution in {max_len}")
    return ids, len(prompt)


def attempt(model, tok, task: Task, problems: list[Problem], k: int, temperature: float = 0.7,
            top_k: int | None = None, max_tokens: int = 256, seed: int = 0, chat: bool | None = None,
            max_batch: int = 64) -> list[list[Attempt]]:
    """k attempts at each problem (greedy when temperature is 0, then k must be 1); every attempt of every problem is
    a row of shared batches. chat: ask through the chat template (None: when the tokenizer has a chat format)."""
    if k < 1 or (temperature == 0 and k != 1):
        raise LlmlabError(f"k={k} attempts at temperature {temperature}: greedy decoding gives one attempt (k=1), "
                          "sampling at least one")
    chat = bool(tok.chat_format) if chat is None else chat
    stop_ids = {tok.special_ids["end_of_turn"]} if chat else {tok.special_ids["eos"], tok.bos_id}
    stops = () if chat else TEXT_STOPS
    prompts = [question_ids(tok, task, p, chat) for p in problems]
    requests = [Request(prompt, max_tokens, temperature=temperature, top_k=top_k, seed=(seed * 1_000_003 + i) * k + j,
                        stop_ids=stop_ids, stop_strings=stops, logprobs=True)
                for i, prompt in enumerate(prompts) for j in range(k)]
    done = complete_all(model, requests, tok if stops else None, max_batch=max_batch)
    out = []
    for i, (problem, prompt) in enumerate(zip(problems, prompts)):
        mine = done[i * k : (i + 1) * k]
        prefill = generation_flops(model.cfg, len(prompt), 1)  # the prompt and the first new token, once
        shared = prefill / k
        row = []
        for c in mine:
            text = cut_at_stop(tok.decode(c.tokens), stops).strip()
            produced = len(c.tokens) + (c.finish == "stop")  # the stop token was generated too
            decode = generation_flops(model.cfg, len(prompt), produced) - prefill
            row.append(Attempt(text, final_answer(text), task.check(problem, text), produced, c.logprob, shared + decode))
        out.append(row)
    return out


@torch.inference_mode()
def final_values(verifier, rows: list[list[int]], pad_id: int, batch_size: int = 32) -> list[float]:
    """The verifier's log-odds at the last token of each row of ids (prompt + solution, whole or partial)."""
    device = verifier.head.weight.device
    scores: list[float] = []
    for first in range(0, len(rows), batch_size):
        chunk = rows[first : first + batch_size]
        ids = torch.full((len(chunk), max(map(len, chunk))), pad_id, dtype=torch.long)
        for r, row in enumerate(chunk):
            ids[r, : len(row)] = torch.tensor(row)
        values = verifier(ids.to(device))  # (B, T)
        scores += [float(values[r, len(row) - 1]) for r, row in enumerate(chunk)]
    return scores


def verifier_scores(verifier, tok, task: Task, problem: Problem, attempts: list[Attempt], chat: bool | None = None,
                    batch_size: int = 32) -> tuple[list[float], float]:
    """(the verifier's final log-odds for each attempt, the FLOPs of scoring them all): each attempt is read once,
    prompt and solution, as the verifier was trained to read it (solution_ids)."""
    chat = bool(tok.chat_format) if chat is None else chat
    rows = [solution_ids(tok, task, problem, a.text, chat, verifier.lm.cfg.seq_len)[0] for a in attempts]
    scores = final_values(verifier, rows, tok.pad_id, batch_size)
    return scores, sum(scoring_flops(verifier.lm.cfg, len(row)) for row in rows)


def step_search(model, verifier, tok, task: Task, problem: Problem, beams: int = 4, expand: int = 4,
                temperature: float = 0.7, top_k: int | None = None, step_tokens: int = 48, max_tokens: int = 256,
                seed: int = 0) -> Attempt:
    """A beam search over solution steps (lines), guided by the verifier: each round every kept partial solution is
    continued `expand` times by one line, the verifier scores every candidate (its value at the candidate's last
    token), finished solutions (the turn ended) are set aside, and the best `beams` unfinished ones go on. Returns
    the best-scored finished solution (or the best partial one when none finished) as an Attempt whose flops are the
    whole search's: every round's prefill per kept solution, every continuation, every verifier read."""
    if not tok.chat_format:
        raise LlmlabError("step search continues a chat model's answer: this tokenizer has no chat format")
    if beams < 1 or expand < 1:
        raise LlmlabError(f"step search needs beams >= 1 and expand >= 1, got {beams} and {expand}")
    end = tok.special_ids["end_of_turn"]
    prompt = question_ids(tok, task, problem, True)
    frontier: list[tuple[list[int], float]] = [([], 0.0)]  # kept partial solutions: token ids, log-probability
    finished: list[tuple[float, list[int], float]] = []  # (verifier score, solution ids, log-probability)
    flops, round_ = 0.0, 0
    while frontier and len(finished) < beams:
        requests = [Request(prompt + sol, min(step_tokens, max_tokens - len(sol)), temperature=temperature,
                            top_k=top_k, seed=(seed * 1_000_003 + round_) * 1_000 + i, stop_ids={end},
                            stop_strings=("\n",), logprobs=True)
                    for b, (sol, _) in enumerate(frontier) for i in range(b * expand, (b + 1) * expand)]
        done = complete_all(model, requests, tok)
        candidates = []  # (solution ids, log-probability, ended)
        for r, c, (sol, logprob) in zip(requests, done, [f for f in frontier for _ in range(expand)]):
            turn_ended = c.finish == "stop" and "\n" not in tok.decode(c.tokens[-1:])  # the stop id, not a line end
            solution = sol + c.tokens
            P = len(r.prompt_ids)
            prefill = generation_flops(model.cfg, P, 1)  # once per kept solution: its `expand` rows share it
            flops += prefill / expand + generation_flops(model.cfg, P, len(c.tokens) + turn_ended) - prefill
            candidates.append((solution, logprob + c.logprob, turn_ended or len(solution) >= max_tokens))
        rows = [prompt + sol + [end] * ended for sol, _, ended in candidates]
        scores = final_values(verifier, rows, tok.pad_id)
        flops += sum(scoring_flops(verifier.lm.cfg, len(row)) for row in rows)
        ranked = sorted(zip(scores, candidates), key=lambda x: -x[0])
        finished += [(score, sol, logprob) for score, (sol, logprob, ended) in ranked if ended]
        frontier = [(sol, logprob) for _, (sol, logprob, ended) in ranked if not ended][:beams]
        round_ += 1
    pool = finished or [(float("-inf"), sol, logprob) for sol, logprob in frontier]
    _, best, logprob = max(pool, key=lambda x: x[0])
    text = tok.decode(best).strip()
    return Attempt(text, final_answer(text), task.check(problem, text), len(best), logprob, flops)
