"""Many attempts at checkable problems: k solutions per problem, sampled as rows of shared batches, each parsed,
checked and costed in FLOPs; what the System 2 strategies (majority vote, best-of-N, search) choose from.

    from llmlab.engine.thinking import attempt
    from llmlab.tasks import get_task
    task = get_task("word_problems")
    problems = task.problems(level=3, split="test", n=100)
    tries = attempt(model, tok, task, problems, k=16, temperature=0.7, seed=0)   # tries[i]: problem i's k Attempts
    tries[0][0].answer, tries[0][0].right, tries[0][0].logprob, tries[0][0].flops

The question is asked as the user's turn of a chat model (the chat template), or as plain text after BOS for a base
model, whose solution ends at a blank line or a document boundary. Compute is counted honestly
(llmlab.model.flops.generation_flops): a problem's prompt is prefilled once for all its k samples (the engine copies
the prefilled cache, so that is what runs), and each sample adds its own decode; the prefill is split evenly over the
problem's attempts.
"""

from __future__ import annotations

from dataclasses import dataclass

from llmlab.engine.batching import Request, complete_all
from llmlab.engine.generate import cut_at_stop
from llmlab.errors import LlmlabError
from llmlab.model.flops import generation_flops
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
