"""The data flywheel: what users flagged and labelers corrected becomes the next served version.

    flags (chat page) -> ideal responses and A/B comparisons (labeling page) -> export (SFT messages, DPO pairs)
      -> fine-tune the served version on the new data mixed with a sample of the old (SFT, then DPO if asked)
      -> evaluate the old and new versions on the flagged prompts and on the regular chat evals
      -> save <run_dir>/<name>/ and register it in the store, to be served beside the old one

    llmlab flywheel --run_dir runs/x --db runs/x/serve.sqlite --start chat_dpo

Work files go to <run_dir>/flywheel/<name>/: data/ (corrections.jsonl, pairs.jsonl, the mixed train files),
the stages' own folders (sft/, chat_sft/, prefs/, chat_dpo/) and report.json.

Misbehaviour on a labelled prompt (greedy answer, `misbehaves`): the answer breaks the refusal policy of the
correction (refuses where the ideal answers, or the reverse), or its numbers are not the ideal's (in order), or it
is not closer to the labeler's ideal response than to the answer that was flagged, or it shares less than half its
words with the ideal (token F1 < 0.5). It is a
string check, like every metric of llmlab.eval.chat_metrics: it cannot tell a good paraphrase from a bad answer,
so it errs on the side of counting misbehaviour. With `holdout`, a fixed share of the corrections is kept out of
training and reported apart: the rate on trained prompts shows the corrections were learned, the held-out rate
whether they generalise.
"""

from __future__ import annotations

import hashlib
import json
import math
import random
import re
from dataclasses import dataclass, field, replace
from pathlib import Path

from llmlab.data.assistant_safety import REFUSAL
from llmlab.data.default_data import default_data_files
from llmlab.engine.conversation import greedy_replies
from llmlab.errors import LlmlabError
from llmlab.eval.scoring import token_f1, wilson
from llmlab.eval.suite import run_evals
from llmlab.files import atomic_write_json, save_config, to_plain, write_jsonl
from llmlab.layout import RunDir
from llmlab.model.folder import load_model_folder, save_model_folder
from llmlab.monitor.store import Store
from llmlab.train.prefs import PrefsConfig, prefs
from llmlab.train.sft import SFTConfig, sft

F1_OK = 0.5  # an answer sharing less than half its words with the ideal response is not the correction
NUMBER = re.compile(r"-?\d+(?:\.\d+)?")
REGULAR_EVALS = ["turn_ending", "arithmetic", "refusal", "over_refusal", "knowledge"]
LOWER_IS_BETTER = {"over_refusal"}  # refusing benign requests; every other regular score is better higher


@dataclass
class FlywheelConfig:
    """One turn of the flywheel.

    Args:
        start: the served version to improve: a model folder name under run_dir (e.g. chat_dpo).
        name: the new version's folder name under run_dir; None: chat_v2, or chat_v<N+1> when start is chat_v<N>.
        old_sft_files: SFT files mixed in against forgetting; empty: the run's default SFT train data.
        old_prefs_files: preference files mixed into DPO; empty: the run's default comparisons.
        old_ratio: old examples mixed in per new example (after repeats).
        repeat: copies of each correction (and new pair) in the mix: the new data is tiny next to the old.
        holdout: share of the corrections kept out of training to measure whether the fix generalises.
        dpo: after SFT, run DPO on the new pairs (corrections over flagged answers, A/B winners over losers).
        sft: SFT settings (train_files and base are set by the flywheel).
        prefs: DPO settings (train_files and start are set by the flywheel).
        evals: the regular evaluations (llmlab.eval.suite) run on both versions; empty: none.
        eval_limit: examples per regular evaluation (None: the quick preset's sizes).
        max_tokens: greedy answers are cut at this many tokens when evaluating.
        seed: seeds the sample of old data and the holdout split.
    """

    start: str = "chat_dpo"
    name: str | None = None
    old_sft_files: list[Path] = field(default_factory=list)
    old_prefs_files: list[Path] = field(default_factory=list)
    old_ratio: float = 3.0
    repeat: int = 4
    holdout: float = 0.0
    dpo: bool = False
    # 4 epochs: on the default model 1 epoch fixed 2 of 13 corrections, 4 fixed all 13 with no regular eval worse
    # beyond noise (docs/flywheel.md)
    sft: SFTConfig = field(default_factory=lambda: SFTConfig(epochs=4.0))
    prefs: PrefsConfig = field(default_factory=lambda: PrefsConfig(epochs=1.0))
    evals: list[str] = field(default_factory=lambda: list(REGULAR_EVALS))
    eval_limit: int | None = 100
    max_tokens: int = 64
    seed: int = 0


def next_name(start: str) -> str:
    """chat_dpo -> chat_v2 (the start is version 1); chat_v2 -> chat_v3."""
    head, _, number = start.rpartition("_v")
    return f"{head}_v{int(number) + 1}" if head and number.isdigit() else "chat_v2"


def misbehaves(answer: str, ideal: str, flagged: str) -> bool:
    """Whether `answer` still misbehaves where a labeler replaced `flagged` with `ideal` (module docstring)."""
    refused, should_refuse = answer.strip().startswith(REFUSAL), ideal.strip().startswith(REFUSAL)
    if refused != should_refuse:
        return True
    if answer.strip() == ideal.strip():
        return False
    if NUMBER.findall(ideal) and NUMBER.findall(answer) != NUMBER.findall(ideal):
        return True  # a wrong number is a wrong fact (docs/labeling.md), however many words are shared
    score = token_f1(answer, ideal)
    return score < F1_OK or score <= token_f1(answer, flagged)


def misbehaviour(model, tok, items: list[dict], max_tokens: int) -> dict:
    """{"rate", "n", "ci95", "not_ideal", "answers", "misbehaves"} of `model` on corrections (dicts with prompt,
    ideal and answer); not_ideal is the stricter share of answers that are not exactly the ideal response."""
    answers = greedy_replies(model, tok, [c["prompt"] for c in items], max_tokens)
    bad = [misbehaves(a, c["ideal"], c["answer"]) for a, c in zip(answers, items)]
    differ = [a.strip() != c["ideal"].strip() for a, c in zip(answers, items)]
    return {"rate": sum(bad) / len(bad), "n": len(bad), "ci95": list(wilson(sum(bad), len(bad))),
            "not_ideal": sum(differ) / len(differ), "answers": answers, "misbehaves": bad}


def compare_regular(before: dict, after: dict) -> dict:
    """Per evaluation of two run_evals summaries: before, after, change, and whether it got worse beyond noise: by
    more than 1.96 standard errors of the difference, each side's error read off its 95% interval."""
    out = {}
    for name, b in before["evals"].items():
        a = after["evals"][name]
        change = a["score"] - b["score"]
        worse = change > 0 if name in LOWER_IS_BETTER else change < 0
        errors = [(r["ci95"][1] - r["ci95"][0]) / (2 * 1.96) for r in (b, a) if r["ci95"]]
        noise = 1.96 * math.sqrt(sum(e * e for e in errors)) if len(errors) == 2 else None
        out[name] = {"before": b["score"], "after": a["score"], "change": change, "n": b["n"],
                     "ci95_before": b["ci95"], "ci95_after": a["ci95"],
                     "worse_beyond_noise": None if noise is None else bool(worse and abs(change) > noise)}
    return out


def _held_out(message_id: int, share: float, seed: int) -> bool:
    h = int.from_bytes(hashlib.sha256(f"{seed}/{message_id}".encode()).digest()[:8], "big")
    return h / 2**64 < share


def _mix(new_rows: list[dict], old_files: list[Path], cfg: FlywheelConfig, out: Path) -> dict:
    """Write repeat x new_rows plus a sample of old_ratio times as many old rows, shuffled; returns the counts."""
    old = [json.loads(line) for path in old_files for line in Path(path).read_text(encoding="utf-8").splitlines()
           if line.strip()]
    rng = random.Random(cfg.seed)
    new = new_rows * cfg.repeat
    sample = rng.sample(old, min(len(old), round(cfg.old_ratio * len(new))))
    rows = new + sample
    rng.shuffle(rows)
    write_jsonl(out, rows)
    return {"new": len(new_rows), "repeated": len(new), "old": len(sample)}


def flywheel(run_dir: Path, db: Path, cfg: FlywheelConfig) -> dict:
    """One turn (module docstring); returns the report, also saved as <run_dir>/flywheel/<name>/report.json."""
    run = RunDir(run_dir)
    store = Store(db)
    start = run.model(cfg.start)
    name = cfg.name or next_name(cfg.start)
    if run.model(name).exists():
        raise LlmlabError(f"{run.model(name)} exists already: pick another --name or remove it")
    corrections = store.corrections()
    if not corrections:
        raise LlmlabError(f"{db}: no labelled answers yet; flag answers in the chat page and write their ideal "
                          f"responses in the labeling page (/label) first")
    turn = run.flywheel(name)  # a run directory of its own: sft/, chat_sft/, prefs/, chat_dpo/, eval/
    work = turn.root
    save_config(work / "config.yaml", {"run_dir": run.root, "db": db, **to_plain(cfg)})
    held_out = [c for c in corrections if _held_out(c["message_id"], cfg.holdout, cfg.seed)]
    trained = [c for c in corrections if c not in held_out]
    if not trained:
        raise LlmlabError(f"all {len(corrections)} corrections were held out: lower --holdout")
    skip = {c["message_id"] for c in held_out}

    data = work / "data"
    store.export_sft(data / "corrections.jsonl")
    store.export_dpo(data / "pairs.jsonl")
    sft_rows = [r for r in _read_jsonl(data / "corrections.jsonl") if r["message_id"] not in skip]
    pair_rows = [r for r in _read_jsonl(data / "pairs.jsonl") if r.get("message_id") not in skip]
    defaults = None if cfg.old_sft_files and (cfg.old_prefs_files or not cfg.dpo) else default_data_files(run.root)
    report = {"name": name, "start": cfg.start, "corrections": len(corrections), "trained": len(trained),
              "held_out": len(held_out), "pairs": len(pair_rows)}
    report["sft_data"] = _mix(sft_rows, cfg.old_sft_files or [defaults["sft_train"]], cfg, data / "sft_train.jsonl")
    sft(work, replace(cfg.sft, base=start, train_files=[data / "sft_train.jsonl"], val_files=[]), resume=True)
    final = turn.model_of("sft")
    if cfg.dpo and pair_rows:
        report["prefs_data"] = _mix(pair_rows, cfg.old_prefs_files or [defaults["prefs_train"]], cfg,
                                    data / "prefs_train.jsonl")
        prefs(work, replace(cfg.prefs, start=final, train_files=[data / "prefs_train.jsonl"], val_files=[]),
              resume=True)
        final = turn.model_of("prefs")

    old_model, tok, _ = load_model_folder(start)
    new_model, _, new_meta = load_model_folder(final)
    for split, items in (("trained", trained), ("held_out", held_out)):
        if items:
            report[f"misbehaviour_{split}"] = {
                "before": misbehaviour(old_model, tok, items, cfg.max_tokens),
                "after": misbehaviour(new_model, tok, items, cfg.max_tokens),
                "prompts": [c["prompt"] for c in items], "ideal": [c["ideal"] for c in items]}
    if cfg.evals:
        sizes = {"chat_max_tokens": cfg.max_tokens, **({"chat": cfg.eval_limit, "knowledge": cfg.eval_limit}
                                                        if cfg.eval_limit else {})}
        before, after = (run_evals(folder, turn.eval(folder.name), run_dir=run.root, names=cfg.evals, sizes=sizes,
                                   seed=cfg.seed) for folder in (start, final))
        report["regular"] = compare_regular(before, after)
    save_model_folder(run.model(name), new_model, tok.folder,
                      {**new_meta, "flywheel": {"from": cfg.start, "data": str(data)}})
    store.register_model(name, str(run.model(name)), {"from": cfg.start, "report": str(work / "report.json")})
    atomic_write_json(work / "report.json", report)
    return report


def _read_jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in Path(path).read_text(encoding="utf-8").splitlines() if line.strip()]
