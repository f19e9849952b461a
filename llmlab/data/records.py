"""Records (JSON objects) from the files and datasets fine-tuning data comes in, the format detected:

    jsonl        one JSON object a line                      (.jsonl, or any file whose first character is "{")
    json-array   one JSON array of objects                   (alpaca_data.json: a file whose first character is "[")
    parquet      a .parquet file, or a folder of them        (read in record batches: bounded memory)
    hf-saved     a folder written by `datasets`' save_to_disk (a DatasetDict folder takes a split: FOLDER@test)
    hf           hf:NAME[@SPLIT], a Hugging Face dataset by name (needs the `hf` extra and the network)

As in `llmlab data prepare`, jsonl:PATH and parquet:PATH name the format instead of detecting it.

    source = open_records("alpaca_data.json")
    source.format                                  # "json-array"
    for where, row, problem in source.rows:        # where: "alpaca_data.json:17"; problem: (reason, message) or None
        ...

A row that is not a JSON object is yielded with its problem (the caller counts and names it) and the rest goes on;
only a file that cannot be read at all, or a source that is not one of the above, is an LlmlabError.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

from llmlab.errors import LlmlabError

FORMATS = ("jsonl", "json-array", "parquet", "hf-saved", "hf")
HF_SAVED_MARKERS = ("dataset_info.json", "dataset_dict.json", "state.json")

Row = tuple[str, dict | None, tuple[str, str] | None]  # (where, the object or None, (reason, message) or None)


@dataclass
class RecordSource:
    """One source of records: its name, the detected format, and its rows (an iterator, read as it goes)."""

    name: str
    format: str
    rows: Iterator[Row]


def open_records(spec: str | Path) -> RecordSource:
    """The records of a file, a folder or hf:NAME[@SPLIT] (see the module docstring)."""
    spec = str(spec)
    kind, _, rest = spec.partition(":")
    if kind in ("jsonl", "parquet") and rest:  # the source syntax of `llmlab data prepare`: the format named
        path = Path(rest)
        if not path.exists():
            raise LlmlabError(f"{rest}: no such file or folder")
        files = sorted(path.rglob("*.parquet")) if kind == "parquet" and path.is_dir() else [path]
        rows = (row for f in files for row in (_parquet_rows(f) if kind == "parquet" else _jsonl_rows(f)))
        return RecordSource(spec, kind, rows)
    if spec.startswith("hf:"):
        name, _, split = spec[3:].partition("@")
        return RecordSource(spec, "hf", _hub_rows(name, split or "train"))
    path, split = Path(spec), None
    if not path.exists() and "@" in spec:  # FOLDER@SPLIT of a saved DatasetDict
        head, _, split = spec.rpartition("@")
        path = Path(head)
    if not path.exists():
        raise LlmlabError(f"{spec}: no such file or folder")
    if path.is_dir():
        if any((path / marker).exists() for marker in HF_SAVED_MARKERS):
            return RecordSource(spec, "hf-saved", _saved_rows(path, split))
        files = sorted(path.rglob("*.parquet"))
        if not files:
            raise LlmlabError(f"{path}: a folder of records must hold .parquet files or a dataset saved by "
                              f"`datasets` (save_to_disk); it has neither")
        return RecordSource(spec, "parquet", (row for f in files for row in _parquet_rows(f)))
    if path.suffix.lower() == ".parquet":
        return RecordSource(spec, "parquet", _parquet_rows(path))
    first = _first_char(path)
    if first == "[":
        return RecordSource(spec, "json-array", _array_rows(path))
    return RecordSource(spec, "jsonl", _jsonl_rows(path))


def _first_char(path: Path) -> str:
    try:
        with open(path, "rb") as f:
            head = f.read(4096).lstrip(b"\xef\xbb\xbf \t\r\n")  # a UTF-8 byte-order mark and whitespace
    except OSError as e:
        raise LlmlabError(f"{path}: cannot read it ({e.strerror})") from e
    return head[:1].decode("latin-1")


def _object(where: str, value) -> Row:
    if isinstance(value, dict):
        return where, value, None
    return where, None, ("malformed_json", f"expected a JSON object, got {type(value).__name__}")


def _jsonl_rows(path: Path) -> Iterator[Row]:
    try:
        with open(path, encoding="utf-8-sig") as f:
            for line_no, line in enumerate(f, 1):
                if not line.strip():
                    continue
                where = f"{path}:{line_no}"
                try:
                    value = json.loads(line.strip())
                except ValueError as e:
                    yield where, None, ("malformed_json", f"not valid JSON ({e})")
                    continue
                yield _object(where, value)
    except UnicodeDecodeError as e:
        raise LlmlabError(f"{path}: not UTF-8 text ({e.reason})") from e


def _array_rows(path: Path) -> Iterator[Row]:
    """The elements of a JSON array, each named by the line it starts on; an element that does not parse ends the
    array there (nothing after it can be found again), and says so."""
    try:
        text = path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as e:
        raise LlmlabError(f"{path}: not UTF-8 text ({e.reason})") from e
    decoder, n = json.JSONDecoder(), len(text)
    line, counted = 1, 0

    def line_at(offset: int) -> int:  # offsets only grow, so the newlines are counted once
        nonlocal line, counted
        line, counted = line + text.count("\n", counted, offset), offset
        return line

    def skip_space(offset: int) -> int:
        while offset < n and text[offset] in " \t\r\n":
            offset += 1
        return offset

    i = skip_space(text.index("[") + 1)
    if i < n and text[i] == "]":
        return
    while True:
        where = f"{path}:{line_at(i)}"
        try:
            value, end = decoder.raw_decode(text, i)
        except ValueError as e:
            yield where, None, ("malformed_json", f"not valid JSON ({e}); the rest of the array is skipped")
            return
        yield _object(where, value)
        i = skip_space(end)
        if i < n and text[i] == "]":
            return
        if i >= n or text[i] != ",":
            yield f"{path}:{line_at(i)}", None, ("malformed_json", "expected ',' or ']' after an element; the rest "
                                                                   "of the array is skipped")
            return
        i = skip_space(i + 1)


def _parquet_rows(path: Path) -> Iterator[Row]:
    import pyarrow.parquet as pq

    try:
        pf = pq.ParquetFile(path)
    except Exception as e:  # pyarrow raises ArrowInvalid and friends for files that are not Parquet
        raise LlmlabError(f"{path}: not a readable Parquet file ({e})") from e
    row = 0
    for batch in pf.iter_batches(batch_size=1024):
        for value in batch.to_pylist():
            yield _object(f"{path}: row {row}", value)
            row += 1


def _saved_rows(folder: Path, split: str | None) -> Iterator[Row]:
    datasets = _datasets(f"{folder} (a dataset saved by `datasets`)")
    loaded = datasets.load_from_disk(str(folder))
    if isinstance(loaded, datasets.DatasetDict):
        if split is None:
            if len(loaded) != 1:
                raise LlmlabError(f"{folder}: a dataset with splits {', '.join(loaded)}; name one: {folder}@SPLIT")
            split = next(iter(loaded))
        if split not in loaded:
            raise LlmlabError(f"{folder}: no split {split!r} (splits: {', '.join(loaded)})")
        loaded = loaded[split]
    for i, value in enumerate(loaded):
        yield _object(f"{folder}: row {i}", value)


def _hub_rows(name: str, split: str) -> Iterator[Row]:
    datasets = _datasets(f"hf:{name}")
    for i, value in enumerate(datasets.load_dataset(name, split=split, streaming=True)):
        yield _object(f"hf:{name}@{split}: row {i}", value)


def _datasets(what: str):
    try:
        import datasets
    except ImportError as e:
        raise LlmlabError(f"{what} needs the `datasets` package: pip install 'llmlab[hf]'") from e
    return datasets
