"""llmlab.layout (the run directory's paths, used by every command) and llmlab.overrides (partial typed configs)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import pytest

from llmlab.errors import LlmlabError
from llmlab.layout import MODEL_OF_STAGE, MODELS, STAGES, RunDir
from llmlab.overrides import apply_overrides, overrides_of, with_values


def test_run_directory_paths():
    run = RunDir("runs/x")
    assert run.tokens_manifest == Path("runs/x/data/tokens/manifest.json")
    assert run.clean_done == Path("runs/x/data/clean/done.json")
    assert run.stage("sft").checkpoints == Path("runs/x/sft/checkpoints")
    assert run.model_of("prefs") == Path("runs/x/chat_dpo") and run.eval("base") == Path("runs/x/eval/base")
    turn = run.flywheel("chat_v2")
    assert turn.model_of("sft") == Path("runs/x/flywheel/chat_v2/chat_sft")  # a flywheel turn is a run directory
    assert run.lab("think") == Path("runs/x/labs/think")
    assert MODELS == tuple(MODEL_OF_STAGE[s] for s in STAGES if s in MODEL_OF_STAGE)
    with pytest.raises(ValueError, match="unknown training stage"):
        run.stage("base")


@dataclass
class Group:
    """A group.

    Args:
        a: first.
        b: second.
    """

    a: int = 1
    b: int = 2


@dataclass
class Config:
    """A config.

    Args:
        x: a number.
        group: a nested group.
    """

    x: float = 0.5
    group: Group = field(default_factory=lambda: Group(b=20))


def test_overrides_change_only_what_they_set():
    Partial = overrides_of(Config)
    assert Partial.__doc__ == Config.__doc__ and Partial().x is None and Partial().group.a is None
    base = with_values(Config(), {"group": {"a": 10}})  # a preset: nested values, the rest from the stage
    assert base == Config(x=0.5, group=Group(a=10, b=20))
    partial = Partial(x=2.0)
    partial.group.b = 7
    assert apply_overrides(base, partial) == Config(x=2.0, group=Group(a=10, b=7))
    assert apply_overrides(base, None) == base and apply_overrides(base, Partial()) == base


def test_unknown_fields_are_named_with_the_valid_ones():
    with pytest.raises(LlmlabError, match=r"--train: unknown field\(s\) y; Config has group, x"):
        with_values(Config(), {"y": 1}, "--train")
    with pytest.raises(LlmlabError, match=r"--train.group: unknown field\(s\) c; Group has a, b"):
        with_values(Config(), {"group": {"c": 1}}, "--train")
