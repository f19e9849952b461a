"""A verifier (outcome reward model, Cobbe et al. 2021): a language model's trunk with a scalar value head that reads,
at every token of a solution, the log-odds that the solution's final answer will be right.

    verifier = Verifier(reasoner)                       # starts from the reasoner's weights; the head starts at 0
    values = verifier(ids)                              # (B, T) log-odds at every position
    save_verifier(Path("runs/x/verifier"), verifier, tok, {"task": "word_problems"})
    verifier, tok, info = load_verifier(Path("runs/x/verifier"), task="word_problems")

A verifier folder is an llmlab model folder (its trunk, so every command can load it as a language model) plus
value_head.safetensors; model.json says stage "verifier" and the task it was trained for.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch
from torch import Tensor, nn

from llmlab.errors import LlmlabError
from llmlab.model.folder import load_model_folder, save_model_folder
from llmlab.model.transformer import Transformer

HEAD_FILE = "value_head.safetensors"


class Verifier(nn.Module):
    """A trunk (an llmlab Transformer) and a linear value head on its final hidden states."""

    def __init__(self, lm: Transformer) -> None:
        super().__init__()
        self.lm = lm
        self.head = nn.Linear(lm.cfg.d_model, 1)
        nn.init.zeros_(self.head.weight)  # every solution starts at even odds: the head learns from there
        nn.init.zeros_(self.head.bias)

    def forward(self, idx: Tensor) -> Tensor:
        """Log-odds (B, T) that the solution is right, read at every position of idx (B, T)."""
        return self.head(self.lm.hidden_states(idx)).squeeze(-1).float()


def save_verifier(folder: Path, verifier: Verifier, tok, meta: dict) -> None:
    """The trunk as a model folder with stage "verifier" and `meta` (task, ...), and the head beside it."""
    from safetensors.torch import save_file

    if "task" not in meta:
        raise LlmlabError("a verifier is saved with the task it was trained for (meta['task'])")
    head = {k: v.detach().to("cpu", torch.float32).contiguous() for k, v in verifier.head.state_dict().items()}
    save_model_folder(Path(folder), verifier.lm, tok.folder, {**meta, "stage": "verifier"},
                      extra_files={HEAD_FILE: head})


def load_verifier(folder: Path, task: str | None = None, device: str | torch.device = "cpu") -> tuple:
    """(verifier in eval mode, tokenizer, model.json) of a verifier folder; with `task`, it must be that task's."""
    from safetensors.torch import load_file

    folder = Path(folder)
    info_path = folder / "model.json"
    info = json.loads(info_path.read_text(encoding="utf-8")) if info_path.exists() else {}
    if info.get("stage") != "verifier" or not (folder / HEAD_FILE).exists():
        raise LlmlabError(f"{folder}: not a verifier folder (model.json stage {info.get('stage')!r}, {HEAD_FILE} "
                          f"{'present' if (folder / HEAD_FILE).exists() else 'missing'})")
    if task is not None and info.get("task") != task:
        raise LlmlabError(f"{folder}: a verifier for task {info.get('task')!r}, not for {task!r}")
    lm, tok, info = load_model_folder(folder, device)
    verifier = Verifier(lm)
    verifier.head.load_state_dict(load_file(folder / HEAD_FILE))
    return verifier.to(device).eval(), tok, info
