"""A lab run's outputs in <run_dir>/labs/<lab>/, the same for every lab, and resumable when killed:

    config.yaml     the experiment's settings; a later run in the same folder must have the same ones
    items.jsonl     one line per measured item (prompt, output, seed, settings, verdict, ...), appended and flushed
                    as each is measured: a killed run keeps every whole line and resumes after the last one
    results.json    the run's figures (written atomically), rates as {"rate", "ci95", "n"}
    *.png           its plots; section.json its section of the report card (llmlab.report.lab_sections)

    record = LabRecord(run_dir, "think", cfg)
    for problem in problems:
        if problem.id in record.done:                 # measured before the run was killed
            continue
        record.add(problem.id, prompt=..., output=..., verdict=...)
    record.write_results({"greedy": rate(correct, n)})
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from llmlab.errors import LlmlabError
from llmlab.eval.scoring import wilson
from llmlab.files import atomic_write_json, fingerprint, save_config, to_plain
from llmlab.layout import RunDir
from llmlab.report.lab_sections import write_lab_section


def rate(successes: int, n: int) -> dict:
    """{"rate", "ci95" (Wilson), "n"}: how every lab reports a rate."""
    if n <= 0:
        raise LlmlabError("a rate needs at least one item")
    return {"rate": successes / n, "ci95": list(wilson(successes, n)), "n": n}


class LabRecord:
    """The folder of one lab run (see the module docstring); `done` maps each recorded item's key to its row."""

    def __init__(self, run_dir: Path, lab: str, config: Any):
        self.run_dir, self.lab, self.folder = Path(run_dir), lab, RunDir(run_dir).lab(lab)
        self.items_path = self.folder / "items.jsonl"
        settings = {"config": to_plain(config), "fingerprint": fingerprint(to_plain(config))}
        saved = self.folder / "config.yaml"
        if saved.exists():
            import yaml

            old = yaml.safe_load(saved.read_text(encoding="utf-8")) or {}
            if old.get("fingerprint") != settings["fingerprint"]:
                raise LlmlabError(f"{self.folder}: made with other settings than this run's; resume with the same "
                                  f"settings, or remove the folder (or use another --run_dir) to start over")
        else:
            save_config(saved, settings)
        self.done: dict[str, dict] = {}
        if self.items_path.exists():
            self._load_items()

    def _load_items(self) -> None:
        text = self.items_path.read_text(encoding="utf-8")
        whole, _, torn = text.rpartition("\n") if not text.endswith("\n") else (text, "", "")
        for number, line in enumerate(whole.splitlines(), 1):
            if line.strip():
                try:
                    row = json.loads(line)
                except json.JSONDecodeError as e:
                    raise LlmlabError(f"{self.items_path}:{number}: not JSON ({e})") from e
                self.done[row["key"]] = row
        if torn:  # the line being written when the run was killed: measured again on resume
            self.items_path.write_text(whole + ("\n" if whole else ""), encoding="utf-8")

    def add(self, key: str, **fields) -> dict:
        """Record one measured item under a key unique within the run, and flush it to disk."""
        if key in self.done:
            raise LlmlabError(f"{self.items_path}: item {key!r} is already recorded")
        row = {"key": key, **to_plain(fields)}
        self.folder.mkdir(parents=True, exist_ok=True)
        with open(self.items_path, "a", encoding="utf-8") as f:
            f.write(json.dumps(row) + "\n")
            f.flush()
        self.done[key] = row
        return row

    def path(self, name: str) -> Path:
        """A file of the lab's folder (a plot, a checkpoint folder...)."""
        return self.folder / name

    def write_results(self, results: dict) -> Path:
        path = self.folder / "results.json"
        atomic_write_json(path, results)
        return path

    def write_section(self, title: str, blocks: list) -> Path:
        """The lab's section of the report card (blocks: llmlab.report.lab_sections)."""
        return write_lab_section(self.run_dir, self.lab, title, blocks)
