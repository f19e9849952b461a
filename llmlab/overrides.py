"""Partial settings over typed config dataclasses: what a preset or a command line changes, and nothing else.

    TrainOverrides = overrides_of(PretrainConfig)       # every field optional (None: keep), nested groups too
    cfg = with_values(PretrainConfig(), {"tokens": 300_000, "bookkeeping": {"checkpoint_every": 25}})   # a preset
    cfg = apply_overrides(cfg, TrainOverrides(seed=1))  # then the user's typed options

`llmlab speedrun` takes its stages' settings this way: its --help lists every field of every stage (the overrides
class carries the config's docstring), a misspelt field is an error naming the valid ones, and a field left unset
keeps the preset's value instead of the config's default.
"""

from __future__ import annotations

import dataclasses
from functools import lru_cache
from typing import Any, Optional, get_type_hints

from llmlab.errors import LlmlabError


@lru_cache(maxsize=None)
def overrides_of(cls: type) -> type:
    """A dataclass with cls's fields, each typed `T | None` and defaulting to None; a nested config dataclass (a
    group) becomes overrides of its own class, with nothing set."""
    hints = get_type_hints(cls)
    specs = []
    for f in dataclasses.fields(cls):
        kind = hints[f.name]
        if dataclasses.is_dataclass(kind):  # a group: its own overrides, all unset by default
            nested = overrides_of(kind)
            specs.append((f.name, nested, dataclasses.field(default_factory=nested)))
        else:
            specs.append((f.name, Optional[kind], dataclasses.field(default=None)))
    partial = dataclasses.make_dataclass(f"{cls.__name__}Overrides", specs)
    partial.__doc__ = cls.__doc__
    partial.__module__ = cls.__module__
    return partial


def apply_overrides(cfg: Any, overrides: Any | None) -> Any:
    """A copy of `cfg` with every field that `overrides` sets (not None), recursing into nested groups."""
    if overrides is None:
        return cfg
    changes = {}
    for f in dataclasses.fields(overrides):
        value = getattr(overrides, f.name)
        if value is None:
            continue
        current = getattr(cfg, f.name)
        changes[f.name] = apply_overrides(current, value) if dataclasses.is_dataclass(current) else value
    return dataclasses.replace(cfg, **changes)


def with_values(cfg: Any, values: dict, where: str = "") -> Any:
    """A copy of `cfg` with the fields named in `values` (a nested dict for nested groups); an unknown field is an
    error naming `where` and the valid fields."""
    known = {f.name for f in dataclasses.fields(cfg)}
    unknown = sorted(set(values) - known)
    if unknown:
        raise LlmlabError(f"{where or type(cfg).__name__}: unknown field(s) {', '.join(unknown)}; "
                          f"{type(cfg).__name__} has {', '.join(sorted(known))}")
    changes = {}
    for name, value in values.items():
        current = getattr(cfg, name)
        if dataclasses.is_dataclass(current) and isinstance(value, dict):
            changes[name] = with_values(current, value, f"{where}.{name}" if where else name)
        else:
            changes[name] = value
    return dataclasses.replace(cfg, **changes)
