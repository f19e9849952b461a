"""Closed-book knowledge: does the model tell what pre-training compressed? Questions about Wikipedia titles.

    llmlab eval run --model runs/x/chat_sft --evals '[knowledge]'

Two groups of titles from the run's data/titles.json (llmlab.data.split):
    reserved  train titles whose article text was pre-trained on but whose Q&A is never used for fine-tuning
    val       held-out titles, never seen at all: the control (what phrasing alone earns)
Questions and reference answers are built exactly as the fine-tuning wiki Q&A (llmlab.data.assistant_sources.wiki_qa:
"What is X?", "Who was X?", "Describe X in a few words.", answered by the article's lead sentences or description),
NFKC-normalised as the fine-tuning data is. Chat models get the question through the chat template; base models
the same question as "Question: ...\\nAnswer:" text (0-shot), so both stages are measured, in the format each knows.
The greedy answer is scored by content-word F1 against the reference: bag-of-words F1 leaving out function words
and the question's own words (the title is given away by the question; "the ... of the ..." matches any reference),
so credit needs words of the answer the model had to know. Plain token F1 (as the chat evaluation used to report)
is in the metrics too. The score is the mean content F1 on reserved titles; `val_f1` and `reserved_minus_val` (with
a normal 95% interval) say how much of it is knowledge rather than the shape of an answer. No chance level.
"""

from __future__ import annotations

import math
import random

from llmlab.data.assistant_sources import wiki_qa
from llmlab.data.clean import normalize_text
from llmlab.data.corpus import wiki_articles
from llmlab.errors import LlmlabError
from llmlab.eval.context import EvalContext
from llmlab.eval.registry import register
from llmlab.eval.scoring import STOPWORDS, mean_ci, token_f1, words
from llmlab.files import read_json
from llmlab.layout import RunDir

MAX_NEW_TOKENS = 64  # the references are at most 350 characters (~90 tokens); most are one sentence


def knowledge_questions(titles: list[str], n: int | None, seed: int, group: str) -> list[tuple[str, str, str]]:
    """Up to n (title, question, reference) for `titles`, in a seeded order; titles wiki_qa skips are left out."""
    articles = wiki_articles()
    order = sorted(titles)
    random.Random(f"{seed}-knowledge-{group}").shuffle(order)
    out = []
    for title in order:
        qa = wiki_qa(random.Random(f"{seed}-knowledge-{title}"), title, articles[title]) if title in articles else None
        if qa:
            out.append((title, normalize_text(qa[0]), normalize_text(qa[1])))
        if n is not None and len(out) == n:
            break
    return out


@register("knowledge", unit="content_f1", needs_run_dir=True)
def run(ctx: EvalContext) -> dict:
    """Closed-book Q&A content-word F1 on titles seen only in pre-training (reserved) vs never seen (val)."""
    path = RunDir(ctx.require_run_dir()).data / "titles.json"
    if not path.exists():
        raise LlmlabError(f"{path}: missing; run `llmlab data prepare` on this run (it writes the title splits)")
    titles = read_json(path)
    f1, plain = {}, {}
    for group in ("reserved", "val"):
        f1[group], plain[group] = [], []
        for title, question, reference in knowledge_questions(titles[group], ctx.size("knowledge"), ctx.seed, group):
            ids, _ = ctx.question_prompt(question, reserve=MAX_NEW_TOKENS)
            output, decoding = ctx.greedy(ids, MAX_NEW_TOKENS)
            f1[group].append(token_f1(output, reference, ignore=STOPWORDS | set(words(question))))
            plain[group].append(token_f1(output, reference))
            ctx.record(prompt=question, output=output, score=f1[group][-1], token_f1=plain[group][-1],
                       reference=reference, title=title, group=group, decoding=decoding)
    reserved, reserved_ci = mean_ci(f1["reserved"], (0.0, 1.0))
    val, val_ci = mean_ci(f1["val"], (0.0, 1.0))
    # Independent groups: the difference's half-width is the root sum of squares of the two (unclipped) half-widths.
    halves = []
    for group in ("reserved", "val"):
        mean, ci = mean_ci(f1[group])
        halves.append(ci[1] - mean if ci else 0.0)
    half = math.hypot(*halves)
    return {"score": reserved, "ci95": reserved_ci, "n": len(f1["reserved"]), "chance": None,
            "metrics": {"val_f1": val, "val_n": len(f1["val"]), "val_ci95_lo": val_ci[0] if val_ci else None,
                        "val_ci95_hi": val_ci[1] if val_ci else None, "reserved_minus_val": reserved - val,
                        "reserved_minus_val_ci95_lo": reserved - val - half,
                        "reserved_minus_val_ci95_hi": reserved - val + half,
                        **{f"{g}_token_f1": sum(plain[g]) / max(1, len(plain[g])) for g in ("reserved", "val")}},
            "notes": "reserved: article text pre-trained on, Q&A never fine-tuned on; val: never seen (the control)"}

