"""`llmlab store ...` and `llmlab arena`: what the serving database holds (llmlab/monitor/store.py).

    llmlab store export --db runs/x/serve.sqlite --sft corrections.jsonl --dpo pairs.jsonl
    llmlab store stats --db runs/x/serve.sqlite
    llmlab store simulate --db runs/x/serve.sqlite --model runs/x/chat_dpo --run_dir runs/x
    llmlab store duel --db runs/x/serve.sqlite --models '{v1: runs/x/chat_dpo, v2: runs/x/chat_v2}' --run_dir runs/x
    llmlab arena --db runs/x/serve.sqlite
"""

from __future__ import annotations

from pathlib import Path


def export(*, db: Path, sft: Path | None = None, dpo: Path | None = None) -> None:
    """Write the labelers' work as fine-tuning data: ideal responses as SFT `messages` JSONL, and preference pairs
    (ideal over the flagged answer, A/B winner over loser) as prompt/chosen/rejected JSONL.

    Args:
        db: the serving database.
        sft: where to write the SFT file (None: not written).
        dpo: where to write the preference file (None: not written).
    """
    from llmlab.monitor.store import Store

    store = Store(db)
    if sft:
        print(f"{store.export_sft(sft)} conversations -> {sft}")
    if dpo:
        print(f"{store.export_dpo(dpo)} preference pairs -> {dpo}")


def stats(*, db: Path) -> None:
    """Row counts of each table, the served versions and the review queue's length.

    Args:
        db: the serving database.
    """
    from llmlab.monitor.store import Store

    store = Store(db)
    for table, count in store.counts().items():
        print(f"{table:<14} {count:,}")
    for m in store.models():
        print(f"model {m['name']}: {m['path']}")
    print(f"review queue   {len(store.review_queue(limit=10**6)):,} answers waiting")


def simulate(*, db: Path, model: Path, run_dir: Path, name: str | None = None, questions: int = 200,
             max_flags: int = 20, seed: int = 0) -> None:
    """A scripted user asks `model` fresh two-digit sums and flags the wrong answers; a scripted labeler writes the
    ideal responses of up to max_flags of them (llmlab/monitor/scripted.py). Then `llmlab flywheel` can run.

    Args:
        db: the serving database to fill.
        model: the chat model folder that answers.
        run_dir: the run whose fine-tuning data the questions must avoid.
        name: the served name the answers are stored under; None: the model folder's name.
        questions: how many questions the user asks.
        max_flags: how many flagged answers the labeler corrects.
        seed: seeds the questions.
    """
    from llmlab.monitor.scripted import scripted_session
    from llmlab.monitor.store import Store

    store = Store(db)
    name = name or Path(model).name
    store.register_model(name, str(model))
    s = scripted_session(store, name, model, run_dir=run_dir, questions=questions, max_flags=max_flags, seed=seed)
    print(f"asked {s['asked']}, flagged {s['wrong']} wrong answers, corrected {s['corrected']} -> {db}")


def duel(*, db: Path, models: dict[str, Path], run_dir: Path, questions: int = 100, seed: int = 1) -> None:
    """Scripted blind A/B comparisons of two versions on fresh two-digit sums (the right answer wins; two right or
    two wrong tie), stored as a labeler's comparisons would be; then `llmlab arena` rates them.

    Args:
        db: the serving database to fill.
        models: the two versions, name -> model folder, e.g. '{chat_dpo: runs/x/chat_dpo, chat_v2: runs/x/chat_v2}'.
        run_dir: the run whose fine-tuning data the questions must avoid.
        questions: how many prompts are compared.
        seed: seeds the questions (another seed than `simulate`'s gives other sums).
    """
    from llmlab.errors import LlmlabError
    from llmlab.monitor.scripted import scripted_duel
    from llmlab.monitor.store import Store

    if len(models) != 2:
        raise LlmlabError(f"--models needs exactly two versions, got {len(models)}")
    store = Store(db)
    for name, folder in models.items():
        store.register_model(name, str(folder))
    tally = scripted_duel(store, {k: Path(v) for k, v in models.items()}, run_dir=run_dir, questions=questions,
                          seed=seed)
    print(", ".join(f"{k} {v}" for k, v in tally.items()) + f" -> {db}")


def arena(*, db: Path, bootstrap: int = 200) -> None:
    """The arena leaderboard of the served versions from the labelers' blind A/B comparisons: Bradley-Terry
    ratings (Elo scale) with 95% bootstrap intervals, and online Elo.

    Args:
        db: the serving database.
        bootstrap: resamples for the intervals.
    """
    from llmlab.monitor.arena import leaderboard
    from llmlab.monitor.store import Store

    store = Store(db)
    games = [(r["model_a"], r["model_b"], r["winner"]) for r in store.comparison_rows()]
    board = leaderboard(games, [m["name"] for m in store.models()], bootstrap=bootstrap)
    print(f"{'model':<20} {'rating':>7} {'95% CI':>15} {'elo':>7} {'games':>6} {'W-L-T':>10}")
    for r in board:
        rating = f"{r['rating']:7.0f} {r['ci95'][0]:7.0f}-{r['ci95'][1]:<7.0f} {r['elo']:7.0f}" if r["rating"] \
            else f"{'-':>7} {'-':>15} {'-':>7}"
        print(f"{r['model']:<20} {rating} {r['games']:>6} {r['wins']:>4}-{r['losses']}-{r['ties']}")
