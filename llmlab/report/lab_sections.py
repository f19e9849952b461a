"""The labs' sections of the report card: each lab writes its section as data into its own folder, and the report
card shows every section it finds there, in the order of the labs' folder names.

    write_lab_section(run_dir, "think", "System 2: accuracy vs thinking time",
                      [("p", "..."), ("table", headers, rows), ("image", "accuracy.png", "accuracy vs FLOPs")])
    read_lab_sections(run_dir)   # [(title, blocks, {image path relative to report/: PNG bytes})], for llmlab.report

<run_dir>/labs/<lab>/section.json holds {"title", "blocks"} in the report's block format (llmlab.report.sections:
("p", text), ("h3", text), ("table", headers, rows), ("code", text), ("details", summary, text), ("image", file,
alt)); an image block names a PNG in the lab's folder. The section stays beside the lab's results, so `llmlab
report` rebuilds the card from what the run directory holds, without importing any lab.
"""

from __future__ import annotations

import json
from pathlib import Path

from llmlab.errors import LlmlabError
from llmlab.files import atomic_write_json
from llmlab.layout import RunDir

BLOCK_KINDS = {"p": 2, "h3": 2, "table": 3, "code": 2, "details": 3, "image": 3}  # kind -> block length


def check_blocks(blocks: list, where: str) -> None:
    for block in blocks:
        if not block or block[0] not in BLOCK_KINDS or len(block) != BLOCK_KINDS[block[0]]:
            raise LlmlabError(f"{where}: not a report block: {block!r} (kinds: {', '.join(BLOCK_KINDS)})")


def write_lab_section(run_dir: Path, lab: str, title: str, blocks: list) -> Path:
    """Write <run_dir>/labs/<lab>/section.json (images: PNG files the lab wrote in that folder)."""
    folder = RunDir(run_dir).lab(lab)
    check_blocks(blocks, f"the {lab} lab's section")
    for block in blocks:
        if block[0] == "image" and not (folder / block[1]).is_file():
            raise LlmlabError(f"the {lab} lab's section shows {folder / block[1]}, which does not exist")
    path = folder / "section.json"
    atomic_write_json(path, {"title": title, "blocks": [list(b) for b in blocks]})
    return path


def read_lab_sections(run_dir: Path) -> list[tuple[str, list, dict[str, bytes]]]:
    """Every lab section of the run (see the module docstring); a section that does not parse is reported in its
    place instead of stopping the report."""
    out = []
    labs = RunDir(run_dir).labs
    for path in sorted(labs.glob("*/section.json")) if labs.is_dir() else []:
        lab = path.parent.name
        try:
            section = json.loads(path.read_text(encoding="utf-8"))
            blocks = [tuple(b) for b in section["blocks"]]
            check_blocks(blocks, str(path))
            title = str(section["title"])
        except (OSError, ValueError, KeyError, TypeError, LlmlabError) as e:
            out.append((f"Lab: {lab}", [("p", f"{path}: unreadable section ({e})")], {}))
            continue
        images, shown = {}, []
        for block in blocks:
            if block[0] == "image":
                name = f"../labs/{lab}/{block[1]}"  # the Markdown report sits in <run_dir>/report/
                images[name] = (path.parent / block[1]).read_bytes()
                block = ("image", name, block[2])
            shown.append(block)
        out.append((title, shown, images))
    return out
