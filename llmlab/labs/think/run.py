"""`llmlab think`: the System 2 experiment. Sample many attempts at held-out problems of a checkable task, and
measure what each test-time strategy makes of them, against the inference FLOPs it spends.

    llmlab think --run_dir runs/r --think.model runs/r/chat_sft --preset quick
    results = run_think(Path("runs/r"), think_config("quick", {"model": "runs/r/chat_sft"}))

Steps, each resumable (a killed run keeps what it measured and goes on from there):
  1. verifier: attempts at training problems (never the test ones), labelled by the task's checker, train an outcome
     reward model on the reasoner's own samples (llmlab.train.verifier); its attempts are kept in verifier_data.jsonl
  2. test problems: per level, a greedy attempt and `samples` sampled attempts per problem, run as rows of shared
     batches, each scored by the verifier; one items.jsonl line per problem (prompt, every attempt with its text,
     answer, verdict, log-probability, tokens, FLOPs and verifier score, the seeds and settings)
  3. coverage: `coverage_samples` attempts at each of `coverage_problems` headline-level problems (items too)
  4. curves (llmlab.labs.think.curves, plots in llmlab.labs.think.report): accuracy and FLOPs per problem of greedy,
     single samples, majority vote, best-of-N by the verifier and by likelihood, difficulty-adaptive best-of-N, at
     k = 1, 2, 4, ... samples, with 95% intervals over problems; coverage pass@k and its power-law fit
Outputs in <run_dir>/labs/think/: config.yaml, items.jsonl, results.json, accuracy.png, coverage.png, section.json.
"""

from __future__ import annotations

import json
import math
import time
from pathlib import Path

from llmlab.engine.strategies import adaptive_best_of, best_of
from llmlab.engine.thinking import Attempt, attempt, verifier_scores
from llmlab.errors import LlmlabError
from llmlab.files import write_jsonl
from llmlab.labs.record import LabRecord, rate
from llmlab.labs.think.config import ThinkConfig
from llmlab.labs.think.curves import best_of_at, coverage_at, fit_coverage, majority_at
from llmlab.layout import StageDir
from llmlab.tasks import get_task
from llmlab.tasks.base import Problem, Task

STRATEGIES = ("majority", "verifier best-of", "likelihood best-of")


def run_think(run_dir: Path, cfg: ThinkConfig, log=print) -> dict:
    """Run (or resume) the experiment; returns the results written to results.json."""
    from llmlab.model.loading import load_model
    from llmlab.model.verifier import load_verifier

    cfg.check()
    task = get_task(cfg.task)
    for level in cfg.levels:
        task.check_level(level)
    record = LabRecord(run_dir, "think", cfg)
    started = time.perf_counter()
    model, tok, _ = load_model(cfg.model)
    check_expressible(tok, task, cfg.levels)
    verifier = None
    if cfg.verifier_problems:
        folder = record.path("verifier")
        if not (folder / "model.json").exists():
            train_the_verifier(record, cfg, task, model, tok, log)
        verifier = load_verifier(folder, task.name)[0]
    for level in cfg.levels:
        problems = task.problems(level, "test", cfg.problems, cfg.seed)
        measure(record, cfg, task, model, tok, verifier, problems, f"L{level}", cfg.samples, log)
    if cfg.coverage_problems:
        problems = task.problems(cfg.headline_level, "test", cfg.coverage_problems, cfg.seed + 1)
        measure(record, cfg, task, model, tok, None, problems, f"coverage-L{cfg.headline_level}",
                cfg.coverage_samples, log)
    results = summarize(record, cfg)
    results["seconds"] = round(time.perf_counter() - started, 1)
    record.write_results(results)
    from llmlab.labs.think.report import write_plots_and_section

    write_plots_and_section(record, results)
    return results


def check_expressible(tok, task: Task, levels: list[int]) -> None:
    """The tokenizer must write the task's solutions back exactly (else the checker could never say right)."""
    for level in levels:
        problem = task.problems(level, "train", 1)[0]
        text = task.solution(problem)
        if tok.decode(tok.encode(text)) != text:
            raise LlmlabError(f"this model's tokenizer cannot write {task.name}'s answers: {text!r} comes back as "
                              f"{tok.decode(tok.encode(text))!r}")


def train_the_verifier(record: LabRecord, cfg: ThinkConfig, task: Task, model, tok, log) -> None:
    """Sample attempts at training problems, label them with the checker, and train the verifier on them."""
    from llmlab.train.verifier import VerifierExample, train_verifier

    data = record.path("verifier_data.jsonl")
    if data.exists():
        rows = [json.loads(line) for line in data.read_text(encoding="utf-8").splitlines()]
    else:
        rows = []
        for level in cfg.levels:
            problems = task.problems(level, "train", cfg.verifier_problems, cfg.seed)
            log(f"verifier data: {len(problems)} level-{level} training problems x {cfg.verifier_samples} attempts")
            tries = attempt(model, tok, task, problems, cfg.verifier_samples, cfg.temperature, cfg.top_k,
                            cfg.max_tokens, seed=cfg.seed + 1000 * level)
            rows += [{"problem": p.to_dict(), "text": a.text, "right": a.right}
                     for p, pool in zip(problems, tries) for a in pool]
        write_jsonl(data, rows)
    right = sum(r["right"] for r in rows)
    log(f"verifier: training on {len(rows)} attempts ({right} right)")
    examples = [VerifierExample(Problem.from_dict(r["problem"]), r["text"], r["right"]) for r in rows]
    summary = train_verifier(StageDir(record.path("verifier_work")), record.path("verifier"), cfg.model, task,
                             examples, cfg.verifier, resume=True)
    log(f"verifier: {summary.get('steps')} steps, held-out accuracy {summary.get('val_accuracy', float('nan')):.3f}")


def measure(record: LabRecord, cfg: ThinkConfig, task: Task, model, tok, verifier, problems: list[Problem],
            group: str, samples: int, log) -> None:
    """Record a greedy attempt and `samples` sampled ones at each problem (key "<group>/<index>"), a chunk of
    problems at a time; the chunk's seed depends only on its place, so a resumed run draws the same attempts."""
    from tqdm import tqdm

    keys = [f"{group}/{i}" for i in range(len(problems))]
    bar = tqdm(total=len(problems), desc=f"think {group}", unit="problem", initial=sum(k in record.done for k in keys))
    for first in range(0, len(problems), cfg.chunk):
        chunk = [(keys[i], problems[i]) for i in range(first, min(first + cfg.chunk, len(problems)))]
        if all(key in record.done for key, _ in chunk):
            continue  # a chunk a killed run left half-recorded is drawn again whole: its seeds are the whole chunk's
        seed = cfg.seed * 1_000_003 + first + 7919 * hash_group(group)
        ps = [p for _, p in chunk]
        greedy = attempt(model, tok, task, ps, 1, 0.0, None, cfg.max_tokens, seed=seed)
        tries = attempt(model, tok, task, ps, samples, cfg.temperature, cfg.top_k, cfg.max_tokens, seed=seed)
        for (key, problem), [first_try], pool in zip(chunk, greedy, tries):
            if key in record.done:
                continue
            scores, scoring = verifier_scores(verifier, tok, task, problem, pool) if verifier else ([], 0.0)
            record.add(key, group=group, level=problem.level, prompt=task.prompt(problem), reference=problem.answer,
                       seed=seed, settings={"temperature": cfg.temperature, "top_k": cfg.top_k,
                                            "max_tokens": cfg.max_tokens},
                       greedy=attempt_row(first_try), samples=[attempt_row(a) for a in pool],
                       scores=scores, scoring_flops=scoring)
            bar.update(1)
    bar.close()


def hash_group(group: str) -> int:
    """A fixed number per group name (Python's hash() of a str changes between processes) for the chunks' seeds."""
    return sum(ord(c) * 31**i for i, c in enumerate(group)) % 100_003


def attempt_row(a: Attempt) -> dict:
    return {"text": a.text, "answer": a.answer, "right": a.right, "tokens": a.tokens, "logprob": a.logprob,
            "flops": a.flops}


def pools_of(rows: list[dict]) -> list[list[Attempt]]:
    return [[Attempt(**s) for s in row["samples"]] for row in rows]


def mean_ci(values: list[float]) -> dict:
    """The mean of per-problem values in [0, 1] with a 95% normal interval over problems (clipped to [0, 1])."""
    n = len(values)
    mean = sum(values) / n
    sd = math.sqrt(sum((v - mean) ** 2 for v in values) / (n - 1)) if n > 1 else 0.0
    half = 1.96 * sd / math.sqrt(n)
    return {"rate": mean, "ci95": [max(0.0, mean - half), min(1.0, mean + half)], "n": n}


def powers_of_two(most: int) -> list[int]:
    return [2**i for i in range(int(math.log2(most)) + 1)]


def level_curves(rows: list[dict], cfg: ThinkConfig) -> dict:
    """Every strategy's accuracy and mean FLOPs per problem at each k, for one level's problems."""
    pools = pools_of(rows)
    right_answer = [{a.answer for a in pool if a.right} for pool in pools]

    def right(i: int, answer: str) -> bool:
        return answer in right_answer[i]  # the checker already judged this very answer text

    sample_flops = sum(a.flops for pool in pools for a in pool) / sum(len(pool) for pool in pools)
    scores = [row["scores"] for row in rows]
    score_flops = sum(row["scoring_flops"] for row in rows) / max(1, sum(len(p) for p in pools))
    greedy = [row["greedy"] for row in rows]
    out = {"greedy": {**rate(sum(g["right"] for g in greedy), len(greedy)),
                      "flops": sum(g["flops"] for g in greedy) / len(greedy)},
           "sample_flops": sample_flops, "verifier_flops_per_sample": score_flops, "strategies": {}}
    has_verifier = all(len(s) == len(p) for s, p in zip(scores, pools)) and bool(scores[0])
    for k in powers_of_two(len(pools[0])):
        at = {"majority": (majority_at(pools, k, right), k * sample_flops),
              "likelihood best-of": (best_of_at(pools, k, "likelihood"), k * sample_flops),
              "coverage": (coverage_at(pools, k), k * sample_flops)}
        if has_verifier:
            at["verifier best-of"] = (best_of_at(pools, k, "verifier", scores), k * (sample_flops + score_flops))
        for name, (values, flops) in at.items():
            out["strategies"].setdefault(name, []).append({"k": k, **mean_ci(values), "flops": flops})
    if has_verifier:
        out["adaptive"] = adaptive(pools, scores, cfg, sample_flops + score_flops)
        out["verifier_audit"] = audit(pools, scores)
    return out


def audit(pools: list[list[Attempt]], scores: list[list[float]]) -> dict:
    """The verifier as a detector of right attempts (log-odds > 0) on these held-out attempts, against the checker:
    precision and recall of "right" with Wilson intervals, and accuracy."""
    pairs = [(s > 0, a.right) for pool, score in zip(pools, scores) for a, s in zip(pool, score)]
    said = sum(p for p, _ in pairs)
    true_pos = sum(p and r for p, r in pairs)
    really = sum(r for _, r in pairs)
    return {"attempts": len(pairs), "right": really,
            "precision": rate(true_pos, said) if said else None, "recall": rate(true_pos, really) if really else None,
            "accuracy": rate(sum(p == r for p, r in pairs), len(pairs))}


def adaptive(pools: list[list[Attempt]], scores: list[list[float]], cfg: ThinkConfig, per_sample: float) -> dict:
    """Difficulty-adaptive best-of-N: each problem takes `adaptive_first` samples, doubling while the verifier is
    unsure (engine.strategies.adaptive_best_of), up to all its samples; accuracy and the mean FLOPs it spent."""
    hits, used = [], []
    for pool, score in zip(pools, scores):
        n = adaptive_best_of(score, cfg.adaptive_first, len(pool), cfg.adaptive_confident)
        hits.append(pool[best_of(list(range(n)), score[:n])].right)
        used.append(n)
    return {**rate(sum(hits), len(hits)), "mean_samples": sum(used) / len(used),
            "flops": per_sample * sum(used) / len(used)}


def summarize(record: LabRecord, cfg: ThinkConfig) -> dict:
    rows = list(record.done.values())
    levels = {}
    for level in cfg.levels:
        mine = [r for r in rows if r["group"] == f"L{level}"]
        levels[str(level)] = level_curves(mine, cfg)
    everything = [r for r in rows if r["group"].startswith("L")]
    results = {"model": cfg.model, "task": cfg.task, "headline_level": cfg.headline_level,
               "problems": len(everything), "levels": levels, "all_levels": level_curves(everything, cfg)}
    cover = [r for r in rows if r["group"].startswith("coverage-")]
    if cover:
        pools = pools_of(cover)
        ks = powers_of_two(len(pools[0]))
        values = [sum(coverage_at(pools, k)) / len(pools) for k in ks]
        results["coverage"] = {"problems": len(pools), "samples": len(pools[0]), "k": ks, "pass_at_k": values}
        try:
            results["coverage"]["fit"] = fit_coverage(ks, values)
        except LlmlabError as e:  # too few informative points (coverage 0 or 1 everywhere): said, not fitted
            results["coverage"]["fit"] = {"error": str(e)}
    return results
