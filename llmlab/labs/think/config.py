"""Settings of `llmlab think` (the System 2 lab) and its presets.

    cfg = think_config("quick", {"model": "runs/r/chat_sft"})     # a preset's values, then the given ones
    cfg = ThinkConfig(model="runs/r/chat_sft", levels=[2, 3], samples=32)

Sizes: the default run measures 510 held-out problems (170 per level x 3 levels) with 64 samples each, and the
coverage curve to k = 1024 on 20 problems of the headline level: sized for <= 30 minutes on 2 CPU cores with the
default-size reasoner (the quick preset samples ~45 attempts/s there). `quick` runs the same code path on 60 problems
of one level, 32 samples each, in a few minutes.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from llmlab.errors import LlmlabError
from llmlab.overrides import apply_overrides, overrides_of, with_values
from llmlab.train.verifier import VerifierConfig


@dataclass
class ThinkConfig:
    """What `llmlab think` measures.

    Args:
        model: the reasoner: any model spec (an llmlab folder trained on the task's worked solutions, see the
            README's "System 2" section; smollm2 for the packaged model).
        task: the checkable task (`llmlab tasks list`).
        levels: difficulty levels measured, each on its own held-out problems.
        headline_level: the level whose curves are the headline (coverage to large k is drawn there).
        problems: held-out test problems per level.
        samples: attempts sampled per problem: the largest k of the majority-vote and best-of-N curves.
        temperature: sampling temperature of the attempts (greedy is measured too).
        top_k: sample among the top_k most likely tokens (None: the whole vocabulary).
        max_tokens: the longest solution, in tokens.
        coverage_problems: problems of the headline level whose coverage (pass@k) is measured to k = coverage_samples
            (0: none).
        coverage_samples: attempts per coverage problem.
        verifier_problems: training problems per level whose attempts train the verifier (0: no verifier).
        verifier_samples: attempts per verifier training problem.
        verifier: the verifier's training settings.
        adaptive_first: difficulty-adaptive best-of-N starts with this many samples and doubles while unsure.
        adaptive_confident: ... until the best verifier log-odds so far reaches this.
        chunk: problems sampled together (rows of shared batches); each chunk's problems are recorded as it ends.
        seed: seeds the problems' attempts.
    """

    model: str = ""
    task: str = "word_problems"
    levels: list[int] = field(default_factory=lambda: [1, 2, 3])
    headline_level: int = 2
    problems: int = 170
    samples: int = 64
    temperature: float = 0.7
    top_k: int | None = 50
    max_tokens: int = 192
    coverage_problems: int = 20
    coverage_samples: int = 1024
    verifier_problems: int = 300
    verifier_samples: int = 8
    verifier: VerifierConfig = field(default_factory=VerifierConfig)
    adaptive_first: int = 4
    adaptive_confident: float = 2.0
    chunk: int = 16
    seed: int = 0

    def check(self) -> None:
        if not self.model:
            raise LlmlabError("--think.model is needed: the reasoner to measure (an llmlab model folder, or smollm2)")
        if self.headline_level not in self.levels:
            raise LlmlabError(f"--think.headline_level {self.headline_level} is not among --think.levels "
                              f"{self.levels}")
        if self.problems < 1 or self.samples < 1 or self.chunk < 1:
            raise LlmlabError("--think.problems, --think.samples and --think.chunk must be >= 1")
        if self.temperature <= 0:
            raise LlmlabError("--think.temperature must be > 0: the strategies choose among sampled attempts "
                              "(greedy is measured beside them)")
        if not 1 <= self.adaptive_first <= self.samples:
            raise LlmlabError(f"--think.adaptive_first {self.adaptive_first} must be between 1 and --think.samples "
                              f"{self.samples}")


PRESETS: dict[str, dict] = {
    "default": {},
    # the same code path in a few minutes: one level, few problems and samples, a small verifier
    "quick": {"levels": [2], "problems": 60, "samples": 32, "coverage_problems": 8, "coverage_samples": 256,
              "verifier_problems": 150, "verifier_samples": 8, "verifier": {"epochs": 3.0}},
}

ThinkOverrides = overrides_of(ThinkConfig)  # the command line's --think.* options: unset ones keep the preset's


def think_config(preset: str = "default", overrides: Any = None) -> ThinkConfig:
    """The preset's settings, then the overrides over them (ThinkOverrides, or a dict of ThinkConfig's fields)."""
    if preset not in PRESETS:
        raise LlmlabError(f"--preset {preset!r}: unknown; presets are {', '.join(PRESETS)}")
    cfg = with_values(ThinkConfig(), PRESETS[preset], f"preset {preset}")
    cfg = with_values(cfg, overrides, "--think") if isinstance(overrides, dict) else apply_overrides(cfg, overrides)
    cfg.check()
    return cfg
