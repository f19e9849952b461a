"""Document sources for `llmlab data prepare --data.sources [...]`, each a spec string:

    builtin              the built-in corpus (Wikipedia leads + Gutenberg books); `builtin:wiki`, `builtin:books`
    txt:PATH             a .txt/.md file, or a folder searched recursively for them; big files are cut at blank
                         lines into documents of at most `max_doc_chars`
    jsonl:PATH[#FIELD]   a .jsonl file or a folder of them; FIELD holds the text (default "text")
    parquet:PATH[#FIELD] a .parquet file or a folder of them, read in record batches (bounded memory)
    hf:NAME[/config=C][#FIELD]  a Hugging Face dataset's train split, streamed by name (needs the `hf` extra and
                         the network)

Bad input never stops the other sources: an unreadable or binary file, a malformed JSONL line or a missing field is
reported (file and line) in `problems` and skipped. Invalid UTF-8 in a text file is replaced by U+FFFD, the text
kept and the count reported (on_invalid_utf8="replace", the default: it loses least), or the file's text from the
first bad byte on is left out ("skip"). Sources stream: nothing is read whole
except the built-in corpus (11 MB).
"""

from __future__ import annotations

import codecs
import json
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterator

from llmlab.data.corpus import Document, book_documents, wiki_documents
from llmlab.errors import LlmlabError

log = logging.getLogger(__name__)

TEXT_SUFFIXES = (".txt", ".md")
READ_BLOCK = 1 << 20  # text files are decoded 1 MB at a time
MAX_JSONL_LINE_BYTES = 64 << 20  # a longer line is skipped (named) rather than loaded
INVALID_UTF8_POLICIES = ("replace", "skip")


@dataclass
class Problems:
    """Bad input found while reading: each entry names the file (and line). Logged as it is found."""

    items: list[str] = field(default_factory=list)

    def add(self, where: str, what: str, kept: bool = False) -> None:
        """Record bad input; `kept`: it was repaired and its text kept, not skipped."""
        message = f"{where}: {what}"
        self.items.append(message)
        log.warning("%s: %s", "repaired" if kept else "skipped", message)


@dataclass(frozen=True)
class DocNaming:
    """How a file's documents are named: `id` (relative to the source's root; suffixed per document) and `source`
    (the spec they came from, the unit of the per-source counts)."""

    id: str
    source: str


def parse_spec(spec: str) -> tuple[str, str, str | None]:
    """'jsonl:data/x.jsonl#body' -> ('jsonl', 'data/x.jsonl', 'body')."""
    kind, _, rest = spec.partition(":")
    if kind == "builtin":
        if rest not in ("", "wiki", "books"):
            raise LlmlabError(f"source {spec!r}: unknown built-in part {rest!r} (use builtin, builtin:wiki or builtin:books)")
        return kind, rest, None
    if kind not in ("txt", "jsonl", "parquet", "hf") or not rest:
        raise LlmlabError(
            f"source {spec!r}: expected builtin, txt:PATH, jsonl:PATH[#FIELD], parquet:PATH[#FIELD] or hf:NAME[#FIELD]"
        )
    path, _, text_field = rest.partition("#")
    if kind == "txt" and text_field:
        raise LlmlabError(f"source {spec!r}: txt sources take no #FIELD")
    return kind, path, (text_field or "text") if kind != "txt" else None


def iter_source(spec: str, problems: Problems, max_doc_chars: int,
                on_invalid_utf8: str = "replace") -> Iterator[Document]:
    """All documents of one source spec (see the module docstring)."""
    kind, target, text_field = parse_spec(spec)
    if kind == "builtin":
        if target in ("", "wiki"):
            yield from wiki_documents()
        if target in ("", "books"):
            yield from book_documents()
    elif kind == "hf":
        yield from _hf_documents(target, text_field)
    else:
        reader: Callable[..., Iterator[Document]] = {"txt": _text_file, "jsonl": _jsonl_file, "parquet": _parquet_file}[kind]
        suffixes = {"txt": TEXT_SUFFIXES, "jsonl": (".jsonl",), "parquet": (".parquet",)}[kind]
        root = Path(target) if Path(target).is_dir() else Path(target).parent
        for path in _files(Path(target), suffixes, problems):
            # ids are relative to the source's root, so the split does not change when the folder moves
            doc = DocNaming(id=f"{kind}:{path.relative_to(root).as_posix()}", source=spec)
            try:
                yield from reader(path, problems, doc, max_doc_chars=max_doc_chars, text_field=text_field,
                                  on_invalid_utf8=on_invalid_utf8)
            except OSError as e:
                problems.add(str(path), f"unreadable ({e.strerror or e})")


def _files(target: Path, suffixes: tuple[str, ...], problems: Problems) -> list[Path]:
    if not target.exists():
        problems.add(str(target), "no such file or folder")
        return []
    if target.is_file():
        return [target]
    files = sorted(p for p in target.rglob("*") if p.is_file() and p.suffix.lower() in suffixes)
    if not files:
        problems.add(str(target), f"folder holds no {'/'.join(suffixes)} files")
    return files


def _looks_binary(path: Path) -> bool:
    with open(path, "rb") as f:
        return b"\x00" in f.read(8192)


def _text_file(path: Path, problems: Problems, doc: DocNaming, max_doc_chars: int, on_invalid_utf8: str,
               **_) -> Iterator[Document]:
    """A text file as one document, or several cut at blank lines when longer than max_doc_chars."""
    if _looks_binary(path):
        problems.add(str(path), "binary file (NUL bytes in the first 8 KB)")
        return
    decoder = codecs.getincrementaldecoder("utf-8")(errors="strict" if on_invalid_utf8 == "skip" else REPLACE)
    buf, offset, part, replaced = "", 0, 0, 0
    with open(path, "rb") as f:
        while True:
            block = f.read(READ_BLOCK)
            pending = len(decoder.getstate()[0])  # bytes of a split character held back from the last block
            before = _replaced_bytes[0]
            try:
                buf += decoder.decode(block, final=not block)
                replaced += _replaced_bytes[0] - before  # this call's replacements, whatever else is being read
            except UnicodeDecodeError as e:
                problems.add(str(path), f"invalid UTF-8 at byte {offset - pending + e.start}; rest of the file skipped "
                                        f"(--data.on_invalid_utf8 replace keeps it)")
                return
            offset += len(block)
            while len(buf) > max_doc_chars:
                cut = buf.rfind("\n\n", 0, max_doc_chars)
                if cut <= 0:
                    cut = buf.rfind(" ", 0, max_doc_chars)
                cut = cut if cut > 0 else max_doc_chars  # a giant line without spaces: hard cut
                yield Document(id=f"{doc.id}#{part}", text=buf[:cut], source=doc.source)
                buf, part = buf[cut:].lstrip("\n"), part + 1
            if not block:
                break
    if buf.strip():
        yield Document(id=f"{doc.id}#{part}" if part else doc.id, text=buf, source=doc.source)
    if replaced:
        problems.add(str(path), f"{replaced} invalid UTF-8 byte(s) replaced by U+FFFD, the text kept "
                                f"(--data.on_invalid_utf8 skip leaves the rest of such a file out)", kept=True)


REPLACE = "llmlab-replace"  # a codecs error handler: each undecodable byte run -> U+FFFD, its bytes counted
_replaced_bytes = [0]


def _replace_and_count(error: UnicodeDecodeError) -> tuple[str, int]:
    _replaced_bytes[0] += error.end - error.start
    return "\ufffd", error.end


codecs.register_error(REPLACE, _replace_and_count)


def _jsonl_file(path: Path, problems: Problems, doc: DocNaming, text_field: str, **_) -> Iterator[Document]:
    with open(path, "rb") as f:
        lineno = 0
        while True:
            raw = f.readline(MAX_JSONL_LINE_BYTES)
            if not raw:
                break
            lineno += 1
            if len(raw) == MAX_JSONL_LINE_BYTES and not raw.endswith(b"\n"):
                while raw and not raw.endswith(b"\n"):  # drain the rest of the giant line
                    raw = f.readline(MAX_JSONL_LINE_BYTES)
                problems.add(f"{path}:{lineno}", f"line longer than {MAX_JSONL_LINE_BYTES >> 20} MB")
                continue
            if not raw.strip():
                continue
            try:
                record = json.loads(raw)
            except UnicodeDecodeError as e:
                problems.add(f"{path}:{lineno}", f"invalid UTF-8 ({e.reason})")
                continue
            except json.JSONDecodeError as e:
                problems.add(f"{path}:{lineno}", f"malformed JSON ({e.msg} at column {e.colno})")
                continue
            if not isinstance(record, dict) or text_field not in record:
                problems.add(f"{path}:{lineno}", f"no field {text_field!r}")
                continue
            text = record[text_field]
            if not isinstance(text, str):
                problems.add(f"{path}:{lineno}", f"field {text_field!r} is {type(text).__name__}, not a string")
                continue
            yield Document(id=f"{doc.id}:{lineno}", text=text, source=doc.source)


def _parquet_file(path: Path, problems: Problems, doc: DocNaming, text_field: str, **_) -> Iterator[Document]:
    import pyarrow.parquet as pq

    try:
        pf = pq.ParquetFile(path)
    except Exception as e:  # pyarrow raises ArrowInvalid and friends for non-parquet files
        problems.add(str(path), f"not a readable Parquet file ({e})")
        return
    if text_field not in pf.schema_arrow.names:
        problems.add(str(path), f"no column {text_field!r} (columns: {', '.join(pf.schema_arrow.names)})")
        return
    row = 0
    for batch in pf.iter_batches(batch_size=4096, columns=[text_field]):
        for text in batch.column(0).to_pylist():
            if isinstance(text, str):
                yield Document(id=f"{doc.id}:{row}", text=text, source=doc.source)
            else:
                problems.add(f"{path}: row {row}", f"column {text_field!r} is {type(text).__name__}, not a string")
            row += 1


def _hf_documents(name: str, text_field: str) -> Iterator[Document]:
    """A Hugging Face dataset by name, streamed (train split). Needs the network; not used by default or in tests."""
    try:
        import datasets
    except ImportError as e:
        raise LlmlabError(f"source hf:{name} needs the `datasets` package: pip install 'llmlab[hf]'") from e
    dataset_name, _, config = name.partition("/config=")
    stream = datasets.load_dataset(dataset_name, config or None, split="train", streaming=True)
    for i, record in enumerate(stream):
        text = record.get(text_field)
        if isinstance(text, str):
            yield Document(id=f"hf:{dataset_name}:{i}", text=text, source=f"hf:{dataset_name}")
