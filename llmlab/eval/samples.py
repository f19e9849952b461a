"""Samples: a few fixed prompts and what the model writes, for reports to show next to the numbers.

    llmlab eval run --model runs/x/base --evals '[samples]'

Base models continue document openings, sampled (temperature 0.8, top-k 50: greedy decoding of a small base model
loops), up to the end of the document (BOS or EOS); each prompt's draw is seeded with seed + its index, so a seed
gives the same text. Chat models answer a few
questions through the chat template, greedily (what the other chat evaluations see). The score is the mean number
of new tokens per sample (a sanity figure, not a quality one).
"""

from __future__ import annotations

from llmlab.engine.generate import generate_ids
from llmlab.eval.context import EvalContext, text_ids
from llmlab.eval.registry import register

OPENINGS = ["The history of the city", "In mathematics, a", "The river flows", "During the war, the king"]
QUESTIONS = ["What is the capital of France?", "Who are you?", "What is 12 + 7?", "Tell me about the Moon."]
MAX_NEW_TOKENS = 48
TEMPERATURE, TOP_K = 0.8, 50


@register("samples", unit="tokens")
def run(ctx: EvalContext) -> dict:
    """A few fixed prompts and the model's outputs (base: document openings; chat: questions)."""
    samples = []
    for index, prompt in enumerate(QUESTIONS if ctx.is_chat else OPENINGS):
        if ctx.is_chat:
            ids, _ = ctx.question_prompt(prompt, reserve=MAX_NEW_TOKENS)
            output, decoding = ctx.greedy(ids, MAX_NEW_TOKENS)
            new_tokens = decoding["new_tokens"]
        else:
            seed = ctx.seed + index
            ends = {ctx.tok.bos_id, ctx.tok.special_ids["eos"]}
            out = generate_ids(ctx.model, text_ids(ctx.tok, prompt), MAX_NEW_TOKENS,
                               temperature=TEMPERATURE, top_k=TOP_K, seed=seed, stop_ids=ends)[0]
            output, new_tokens = ctx.tok.decode(out), len(out)
            decoding = {"temperature": TEMPERATURE, "top_k": TOP_K, "seed": seed, "max_new_tokens": MAX_NEW_TOKENS,
                        "template": "text", "new_tokens": new_tokens}
        samples.append({"prompt": prompt, "output": output})
        ctx.record(prompt=prompt, output=output, score=float(new_tokens), decoding=decoding)
    return {"score": sum(item["decoding"]["new_tokens"] for item in ctx.items) / len(samples), "ci95": None,
            "n": len(samples), "chance": None, "metrics": {}, "samples": samples}
