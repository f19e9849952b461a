"""A chat model's answers measured as a user meets them: at the chat's own sampling, several seeds, next to greedy.

    from llmlab.eval.chat_sampling import measure
    items = [{"messages": [{"role": "user", "content": "Who are you?"}], "check": lambda text: "llmlab" in text}]
    result = measure(ctx, items)                                  # {"score", "ci95", "n", "metrics": {"greedy", ...}}
    result = measure(ctx, items, judge=lambda item, reply: reply.stopped)     # judged on how the turn ended

Each item gets one greedy answer and `SAMPLES` sampled ones at the chat's defaults (llmlab.engine.conversation:
temperature, top-k), drawn from a seed per item; every answer of every item is a row of shared batches of the
engine's continuous batching, so they decode together. The score is the mean over items of the share
of sampled answers judged right, with a normal 95% interval over items; `greedy` (Wilson interval) is in the metrics.
Each item's line of the JSONL holds the greedy answer, every sample and its verdict, and the sampling settings.
"""

from __future__ import annotations

from typing import Callable

from llmlab.engine.conversation import CHAT_TEMPERATURE, CHAT_TOP_K
from llmlab.eval.context import EvalContext, Reply
from llmlab.eval.scoring import mean_ci, rate_ci
from llmlab.tokenizer.chat import render_prompt

SAMPLES = 8  # sampled answers per item, at the chat's defaults
MAX_TOKENS = 64  # the default data's answers are under ~90 tokens, its facts' one sentence (< 40 tokens)

Judge = Callable[[dict, Reply], bool]


def by_check(item: dict, reply: Reply) -> bool:
    """The default judge: the item's own check of the answer's text."""
    return bool(item["check"](reply.text))


def measure(ctx: EvalContext, items: list[dict], judge: Judge = by_check) -> dict:
    """Greedy and SAMPLES sampled answers for each item ({"messages", optional "check", anything else to record}),
    judged, recorded in ctx.items (score = the item's share of right samples) and summed up."""
    sampled_rates, greedy_flags = [], []
    budget = ctx.size("chat_max_tokens") or MAX_TOKENS
    prompts = [render_prompt(ctx.tok, item["messages"]) for item in items]
    answers = ctx.chat_replies(prompts, budget, SAMPLES, seeds=[ctx.seed * 100_003 + i for i in range(len(items))],
                               temperature=CHAT_TEMPERATURE, top_k=CHAT_TOP_K)
    for item, (greedy_text, decoding, samples) in zip(items, answers):
        verdicts = [judge(item, s) for s in samples]
        sampled_rates.append(sum(verdicts) / len(verdicts))
        greedy_flags.append(judge(item, Reply(greedy_text, decoding["stopped"])))
        info = {k: v for k, v in item.items() if k not in ("messages", "check")}
        ctx.record(prompt=item["messages"], output=greedy_text, score=sampled_rates[-1], greedy_right=greedy_flags[-1],
                   samples=[s.text for s in samples], sample_verdicts=verdicts, decoding=decoding,
                   sampling={"temperature": CHAT_TEMPERATURE, "top_k": CHAT_TOP_K, "samples": SAMPLES}, **info)
    score, ci = mean_ci(sampled_rates, (0.0, 1.0))
    greedy, greedy_ci = rate_ci(greedy_flags)
    metrics = {"greedy": greedy, "greedy_ci95": greedy_ci, "samples_per_item": SAMPLES,
               "temperature": CHAT_TEMPERATURE, "top_k": CHAT_TOP_K}
    return {"score": score, "ci95": ci, "n": len(items), "chance": None, "metrics": metrics}


def rate_by(ctx: EvalContext, key: str) -> dict:
    """The mean item score of each value of ctx.items' `key` (e.g. the fact kind)."""
    groups: dict = {}
    for item in ctx.items:
        groups.setdefault(str(item[key]), []).append(item["score"])
    return {name: sum(v) / len(v) for name, v in sorted(groups.items())}
