"""The run directory: every path a command reads or writes under `--run_dir`, and the pipeline's stage and model
names. Every command builds its paths here, so the layout is written down once:

    <run_dir>/
      data/             prepare_config.yaml, clean/ (docs_NNNNN.jsonl, done.json), tokens/ (manifest.json, shards),
                        titles.json, stats.json, doc_lengths.png                       (`llmlab data prepare`)
      tokenizer/        tokenizer.json + its configs, train_config.yaml, stats/        (`llmlab tokenizer train`)
      assistant_data/   the default fine-tuning mixture: sft_{train,val}.jsonl, prefs_{train,val}.jsonl, counts.json
      pretrain/ sft/ prefs/
                        a training stage's work: config.yaml, metrics.jsonl, checkpoints/step_NNNNNN/
                        (pretrain/ also zip_view.json)
      base/ chat_sft/ chat_dpo/
                        the model folders those stages write (model.json, model.safetensors, tokenizer/)
      eval/<model>/     summary.json, per-item JSONL, samples.jsonl                    (`llmlab eval run`)
      report/           report.md, report.html, loss_curves.png                        (`llmlab report`)
      speedrun.json     the speedrun's record of its stages                            (`llmlab speedrun`)
      serve.sqlite      the serving database, by convention                            (`llmlab serve --db`)
      flywheel/<name>/  one flywheel turn, itself laid out as a run directory, and <run_dir>/<name>/ its model
      labs/<lab>/       one lab's outputs: config.yaml, results.json, items.jsonl, PNGs, section.json (llmlab.labs)

    from llmlab.layout import RunDir
    run = RunDir("runs/x")
    run.model("chat_sft") / "model.json"      # runs/x/chat_sft/model.json
    run.stage("pretrain").checkpoints          # runs/x/pretrain/checkpoints
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

# The speedrun's stages in order, and the training stages' work folders with the model folder each one writes.
STAGES = ("data", "pretrain", "sft", "prefs", "eval", "report")
MODEL_OF_STAGE = {"pretrain": "base", "sft": "chat_sft", "prefs": "chat_dpo"}
MODELS = tuple(MODEL_OF_STAGE.values())  # the pipeline's model folders, in pipeline order
MODEL_LABELS = {"base": "BASE", "chat_sft": "SFT", "chat_dpo": "DPO"}  # their column names in the report card
DEFAULT_RUN_DIR = Path("runs/default")


@dataclass(frozen=True)
class StageDir:
    """A training stage's work folder (<run_dir>/pretrain, sft, prefs, a flywheel turn's, or a lab's trainer's under
    <run_dir>/labs/<lab>/)."""

    path: Path

    @property
    def config(self) -> Path:
        return self.path / "config.yaml"

    @property
    def metrics(self) -> Path:
        return self.path / "metrics.jsonl"

    @property
    def checkpoints(self) -> Path:
        return self.path / "checkpoints"

    @property
    def tensorboard(self) -> Path:
        return self.path / "tensorboard"

    @property
    def zip_view(self) -> Path:
        return self.path / "zip_view.json"


@dataclass(frozen=True)
class RunDir:
    """The paths of one run directory (see the module docstring)."""

    root: Path

    def __init__(self, root: Path | str):
        object.__setattr__(self, "root", Path(root))

    # data and tokenizer
    @property
    def data(self) -> Path:
        return self.root / "data"

    @property
    def clean(self) -> Path:
        return self.data / "clean"

    @property
    def clean_done(self) -> Path:
        return self.clean / "done.json"

    @property
    def tokens(self) -> Path:
        return self.data / "tokens"

    @property
    def tokens_manifest(self) -> Path:
        return self.tokens / "manifest.json"

    @property
    def tokenizer(self) -> Path:
        return self.root / "tokenizer"

    @property
    def assistant_data(self) -> Path:
        return self.root / "assistant_data"

    # training stages and their models
    def stage(self, name: str) -> StageDir:
        """The work folder of a training stage: pretrain, sft or prefs."""
        if name not in MODEL_OF_STAGE:
            raise ValueError(f"unknown training stage {name!r}; stages are {', '.join(MODEL_OF_STAGE)}")
        return StageDir(self.root / name)

    def model(self, name: str) -> Path:
        """A model folder of the run: base, chat_sft, chat_dpo, or a flywheel version (chat_v2, ...)."""
        return self.root / name

    def model_of(self, stage: str) -> Path:
        """The model folder a training stage writes."""
        return self.model(MODEL_OF_STAGE[stage])

    # evaluation, report, records
    def eval(self, model: str) -> Path:
        return self.root / "eval" / model

    @property
    def report(self) -> Path:
        return self.root / "report"

    @property
    def speedrun_record(self) -> Path:
        return self.root / "speedrun.json"

    @property
    def serve_db(self) -> Path:
        return self.root / "serve.sqlite"

    def flywheel(self, name: str) -> RunDir:
        """The work folder of the flywheel turn that makes model `name`: a run directory of its own."""
        return RunDir(self.root / "flywheel" / name)

    @property
    def labs(self) -> Path:
        return self.root / "labs"

    def lab(self, name: str) -> Path:
        return self.labs / name
