"""The data pipeline: every source type, every bad input, the split, dedup, shard format, manifest and re-runs."""

from __future__ import annotations

import json
import random
import shutil
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from conftest import make_text
from llmlab.data.clean import CleanConfig, clean_text
from llmlab.data.minhash import near_duplicates, signature
from llmlab.data.prepare import PrepareConfig
from llmlab.data.shards import HEADER_BYTES, ShardWriter, document_lengths, open_shard, read_header, token_dtype
from llmlab.data.sources import Problems, iter_source, parse_spec
from llmlab.data.split import is_reserved_title, split_of
from llmlab.data.store import iter_clean_docs
from llmlab.errors import LlmlabError
from llmlab.files import read_json
from llmlab.pipeline.prepare import prepare
from llmlab.tokenizer.bpe import Tokenizer


def run_prepare(run_dir: Path, tokenizer: Path, sources: list[str], **cfg) -> dict:
    """Prepare with a ready-made tiny tokenizer (copied in, so prepare does not train one); return the manifest."""
    if not (run_dir / "tokenizer").exists():
        shutil.copytree(tokenizer, run_dir / "tokenizer")
    prepare(run_dir=run_dir, data=PrepareConfig(sources=sources, workers=1, **cfg))
    return read_json(run_dir / "data" / "tokens" / "manifest.json")


def docs_of(spec: str, max_doc_chars: int = 100_000) -> tuple[list, Problems]:
    problems = Problems()
    return list(iter_source(spec, problems, max_doc_chars)), problems


# ------------------------------------------------------------------------------------------------ sources


def test_txt_folder_reads_txt_and_md_recursively_and_ignores_other_files(tmp_path):
    (tmp_path / "sub").mkdir()
    (tmp_path / "a.txt").write_text("alpha text", encoding="utf-8")
    (tmp_path / "sub" / "b.md").write_text("# beta\n\nmarkdown", encoding="utf-8")
    (tmp_path / "c.csv").write_text("x,y", encoding="utf-8")
    docs, problems = docs_of(f"txt:{tmp_path}")
    assert sorted(d.text for d in docs) == ["# beta\n\nmarkdown", "alpha text"]
    assert not problems.items


def test_big_text_file_is_cut_at_blank_lines(tmp_path):
    paragraphs = [f"paragraph {i} " + "word " * 50 for i in range(40)]
    (tmp_path / "big.txt").write_text("\n\n".join(paragraphs), encoding="utf-8")
    docs, _ = docs_of(f"txt:{tmp_path / 'big.txt'}", max_doc_chars=1000)
    assert len(docs) > 5
    assert all(len(d.text) <= 1000 for d in docs)
    assert all(d.text.startswith("paragraph") for d in docs)  # cuts fall on paragraph boundaries
    assert len({d.id for d in docs}) == len(docs)


def test_jsonl_with_custom_field_and_bad_lines(tmp_path):
    path = tmp_path / "data.jsonl"
    path.write_bytes(
        b'{"body": "first document"}\n'
        b"{not json\n"
        b'{"other": "no body"}\n'
        b'{"body": 42}\n'
        b"\n"
        b'{"body": "caf\xc3\xa9"}\n'
        b'{"body": "bad \xff byte"}\n'
    )
    docs, problems = docs_of(f"jsonl:{path}#body")
    assert [d.text for d in docs] == ["first document", "café"]
    assert any(f"{path}:2: malformed JSON" in p for p in problems.items)
    assert any(f"{path}:3: no field 'body'" in p for p in problems.items)
    assert any(f"{path}:4: field 'body' is int" in p for p in problems.items)
    assert any(f"{path}:7: invalid UTF-8" in p for p in problems.items)


def test_parquet_source_and_missing_column(tmp_path):
    pq.write_table(pa.table({"text": ["one doc", "two doc", None], "n": [1, 2, 3]}), tmp_path / "a.parquet")
    docs, problems = docs_of(f"parquet:{tmp_path}")
    assert [d.text for d in docs] == ["one doc", "two doc"]
    assert any("row 2" in p for p in problems.items)
    _, problems = docs_of(f"parquet:{tmp_path / 'a.parquet'}#body")
    assert any("no column 'body' (columns: text, n)" in p for p in problems.items)


def test_builtin_corpus_has_wiki_articles_and_stripped_books():
    docs, problems = docs_of("builtin")
    wiki = [d for d in docs if d.source == "wiki"]
    books = [d for d in docs if d.source == "books"]
    assert len(wiki) == 10_033 and not problems.items
    assert {d.id.split("/")[1] for d in books} >= {"war-and-peace", "the-adventures-of-sherlock-holmes"}
    assert not any("Project Gutenberg" in d.text for d in books)  # licence boilerplate stripped
    dog = next(d for d in wiki if d.title == "Dog")
    assert dog.id == "wiki/Dog" and "domesticated" in dog.text


def test_bad_source_specs_are_rejected_before_work():
    for spec in ["csv:x.csv", "txt:", "builtin:news", "txt:a#field"]:
        with pytest.raises(LlmlabError, match="source"):
            parse_spec(spec)
    assert parse_spec("jsonl:a.jsonl") == ("jsonl", "a.jsonl", "text")


# ------------------------------------------------------------------------------------------- bad input files


def test_empty_folder_binary_invalid_utf8_and_missing_path_are_named(tmp_path):
    (tmp_path / "empty").mkdir()
    (tmp_path / "mixed").mkdir()
    (tmp_path / "mixed" / "bin.txt").write_bytes(b"\x00\x01\x02ELF" * 100)
    (tmp_path / "mixed" / "latin1.txt").write_bytes("good start ".encode() + b"caf\xe9")
    (tmp_path / "mixed" / "ok.txt").write_text("fine text here", encoding="utf-8")
    _, p1 = docs_of(f"txt:{tmp_path / 'empty'}")
    docs, p2 = docs_of(f"txt:{tmp_path / 'mixed'}")
    _, p3 = docs_of(f"txt:{tmp_path / 'nope'}")
    assert p1.items == [f"{tmp_path / 'empty'}: folder holds no .txt/.md files"]
    assert [d.text for d in docs] == ["good start caf\ufffd", "fine text here"]  # the bad byte replaced, text kept
    assert any("bin.txt: binary file" in p for p in p2.items)
    assert any("latin1.txt: 1 invalid UTF-8 byte(s) replaced by U+FFFD" in p for p in p2.items)
    assert p3.items == [f"{tmp_path / 'nope'}: no such file or folder"]


def test_invalid_utf8_can_skip_the_rest_of_the_file_instead(tmp_path):
    (tmp_path / "bad.txt").write_bytes("good start ".encode() + b"caf\xe9 and more\n\n" + "é".encode() * 3)
    problems = Problems()
    kept = list(iter_source(f"txt:{tmp_path / 'bad.txt'}", problems, 100_000, on_invalid_utf8="skip"))
    assert kept == [] and "invalid UTF-8 at byte 14; rest of the file skipped" in problems.items[0]
    replaced = list(iter_source(f"txt:{tmp_path / 'bad.txt'}", Problems(), 100_000))
    assert [d.text for d in replaced] == ["good start caf\ufffd and more\n\nééé"]
    with pytest.raises(LlmlabError, match="on_invalid_utf8: 'drop'"):
        PrepareConfig(on_invalid_utf8="drop")


def test_unreadable_file_is_named_and_skipped(tmp_path, monkeypatch):
    (tmp_path / "a.txt").write_text("readable", encoding="utf-8")
    (tmp_path / "b.txt").write_text("locked", encoding="utf-8")
    real_open = open

    def guarded_open(path, *args, **kwargs):  # root ignores chmod 000, so simulate EACCES
        if str(path).endswith("b.txt"):
            raise PermissionError(13, "Permission denied", str(path))
        return real_open(path, *args, **kwargs)

    monkeypatch.setattr("builtins.open", guarded_open)
    docs, problems = docs_of(f"txt:{tmp_path}")
    assert [d.text for d in docs] == ["readable"]
    assert problems.items == [f"{tmp_path / 'b.txt'}: unreadable (Permission denied)"]


@pytest.mark.slow
def test_100mb_line_without_newline(tmp_path, tiny_tokenizer):
    """A 100 MB single line: a text file is cut into bounded documents; a JSONL line over the limit is skipped."""
    (tmp_path / "corpus").mkdir()
    blob = ("x" * 99 + " ") * 1_000_000  # 100 MB, one line
    (tmp_path / "corpus" / "huge.txt").write_text(blob, encoding="utf-8")
    (tmp_path / "corpus" / "ok.txt").write_text(make_text(random.Random(1), 300), encoding="utf-8")
    docs = 0
    for doc in iter_source(f"txt:{tmp_path / 'corpus' / 'huge.txt'}", Problems(), 100_000):
        assert len(doc.text) <= 100_000
        docs += 1
    assert docs >= 1000
    jsonl = tmp_path / "huge.jsonl"
    with open(jsonl, "w", encoding="utf-8") as f:
        f.write('{"text": "' + "y" * (100 << 20) + '"}\n{"text": "after the huge line"}\n')
    jdocs, problems = docs_of(f"jsonl:{jsonl}")
    assert [d.text for d in jdocs] == ["after the huge line"]
    assert problems.items == [f"{jsonl}:1: line longer than 64 MB"]
    # end to end: the junk is filtered (mean word length 99 > 15) and the good file goes through
    manifest = run_prepare(tmp_path / "run", tiny_tokenizer, [f"txt:{tmp_path / 'corpus'}"])
    report = read_json(tmp_path / "run" / "data" / "clean" / "done.json")["report"]
    assert sum(report["removed"]["word_length"].values()) >= 1000
    assert manifest["splits"]["train"]["docs"] + manifest["splits"]["val"]["docs"] == 1


def test_nothing_usable_stops_cleanly(tmp_path, tiny_tokenizer):
    (tmp_path / "tiny.txt").write_text("too short", encoding="utf-8")
    with pytest.raises(LlmlabError, match="no usable documents"):
        run_prepare(tmp_path / "run", tiny_tokenizer, [f"txt:{tmp_path / 'tiny.txt'}", f"txt:{tmp_path / 'missing'}"])
    assert not (tmp_path / "run" / "data" / "clean" / "done.json").exists()


# ----------------------------------------------------------------------------------------------- cleaning


def test_cleaning_steps_and_filters():
    cfg = CleanConfig()
    text, removed, changed = clean_text("Area 105.4\u00a0km2,\r\nwith\x07 a bell and \ufb01ne ligatures here.", cfg)
    assert removed is None and set(changed) == {"normalize", "control"}
    assert text == "Area 105.4 km2,\nwith a bell and fine ligatures here."
    assert clean_text("short", cfg)[1] == "min_chars"
    assert clean_text("one two three four xxxxxxxxxxxxxxxxxxxxxxxxxxxx", CleanConfig(min_words=6))[1] == "min_words"
    assert clean_text("12 34 56 78 90 12 34 56 78 90 12 34 56", cfg)[1] == "alpha"
    assert clean_text("a " + "aGVsbG8gd29ybGQgdGhpcyBpcyBiYXNlNjQ= " * 5, cfg)[1] == "word_length"
    assert clean_text("x" * 100 + " y z w v", CleanConfig(max_chars=50))[1] == "max_chars"
    with pytest.raises(LlmlabError, match="normalization"):
        CleanConfig(normalization="NFX")


def test_minhash_estimates_jaccard_and_finds_near_duplicates():
    rng = random.Random(3)
    base = make_text(rng, 400)
    words = base.split()
    near = " ".join(words[:390] + ["different"] * 10)  # ~97% of the 5-grams shared
    other = make_text(rng, 400)
    sigs = np.stack([signature(t) for t in (base, other, near, base)])
    assert (sigs[0] == sigs[3]).all()
    assert (sigs[0] == sigs[2]).mean() > 0.85 and (sigs[0] == sigs[1]).mean() < 0.3
    assert near_duplicates(sigs, 0.8).tolist() == [False, False, True, True]
    assert not near_duplicates(sigs, 1.01).any()  # threshold > 1 turns it off


def test_prepare_removes_exact_and_near_duplicates_with_counts(tmp_path, tiny_tokenizer):
    rng = random.Random(5)
    texts = [make_text(rng, 200) for _ in range(20)]
    texts += [texts[0], texts[1]]  # exact duplicates
    texts.append(" ".join(texts[2].split()[:-3] + ["zebra", "quartz", "violin"]))  # near duplicate
    with open(tmp_path / "docs.jsonl", "w", encoding="utf-8") as f:
        for t in texts:
            f.write(json.dumps({"text": t}) + "\n")
    manifest = run_prepare(tmp_path / "run", tiny_tokenizer, [f"jsonl:{tmp_path / 'docs.jsonl'}"])
    report = read_json(tmp_path / "run" / "data" / "clean" / "done.json")["report"]
    source = f"jsonl:{tmp_path / 'docs.jsonl'}"
    assert report["removed"]["exact_dup"] == {source: 2}
    assert report["removed"]["near_dup"] == {source: 1}
    assert manifest["splits"]["train"]["docs"] + manifest["splits"]["val"]["docs"] == 20


# ------------------------------------------------------------------------------------------------- split


def test_split_is_a_stable_hash_of_the_id():
    ids = [f"doc-{i}" for i in range(20_000)]
    splits = [split_of(i) for i in ids]
    assert 0.04 < splits.count("val") / len(ids) < 0.06
    assert [split_of(i) for i in reversed(ids)] == splits[::-1]  # order-independent
    # pinned values: if these change, held-out text of existing runs silently moves into training
    assert [i for i in range(100) if splits[i] == "val"] == [5, 9, 19, 33, 41, 64, 72, 74, 99]
    assert [split_of(f"wiki/{t}") for t in ("Academy Awards", "Audience", "Dog")] == ["val", "val", "train"]
    assert split_of("doc-5", val_fraction=0.5) == "val"  # a bigger fraction keeps every old val id in val


def test_reserved_titles_are_train_titles_only():
    titles = [f"Title {i}" for i in range(10_000)]
    reserved = [t for t in titles if is_reserved_title(t)]
    assert 300 < len(reserved) < 700
    assert all(split_of(f"wiki/{t}") == "train" for t in reserved)


# ------------------------------------------------------------------------------------------ shards, manifest


def test_shards_manifest_and_rerun(tmp_path, tiny_tokenizer):
    rng = random.Random(7)
    (tmp_path / "corpus").mkdir()
    for i in range(60):
        (tmp_path / "corpus" / f"d{i:02d}.txt").write_text(make_text(rng, 120), encoding="utf-8")
    run = tmp_path / "run"
    manifest = run_prepare(run, tiny_tokenizer, [f"txt:{tmp_path / 'corpus'}"], shard_tokens=2000)
    tok = Tokenizer.load(run / "tokenizer")
    assert manifest["dtype"] == "uint16" and manifest["tokenizer"]["sha256"] == tok.sha256
    docs = {d["text"] for d in iter_clean_docs(run)}
    total_docs = 0
    for split, info in manifest["splits"].items():
        assert len(info["shards"]) >= (2 if split == "train" else 1)  # an empty split still has its (empty) shard
        for shard in info["shards"]:
            path = run / "data" / "tokens" / shard["file"]
            header = read_header(path)
            assert (header.n_tokens, header.n_docs, header.itemsize) == (shard["tokens"], shard["docs"], 2)
            tokens = open_shard(path, tok.sha256)
            starts = np.flatnonzero(tokens == tok.bos_id)
            assert len(starts) == shard["docs"] and (len(tokens) == 0 or starts[0] == 0)
            for a, b in zip(starts, np.append(starts[1:], len(tokens))):
                assert tok.decode(tokens[a + 1 : b].tolist()) in docs  # every document round-trips
            assert document_lengths(tokens, tok.bos_id).sum() == len(tokens)
            total_docs += shard["docs"]
    assert total_docs == 60
    ids = {d["id"] for d in iter_clean_docs(run)}
    assert "txt:d07.txt" in ids  # ids are relative to the source folder: the split survives moving it
    assert set(read_json(run / "data" / "clean" / "done.json")["report"]["read"]) == {f"txt:{tmp_path / 'corpus'}"}
    # a second run is a no-op: nothing is rewritten
    mtimes = {p: p.stat().st_mtime_ns for p in (run / "data").rglob("*") if p.is_file() and p.suffix in (".bin", ".jsonl")}
    run_prepare(run, tiny_tokenizer, [f"txt:{tmp_path / 'corpus'}"], shard_tokens=2000)
    assert mtimes == {p: p.stat().st_mtime_ns for p in mtimes}
    assert not list(run.rglob("*.tmp"))
    assert (run / "data" / "doc_lengths.png").stat().st_size > 1000
    assert read_json(run / "data" / "stats.json")["splits"]["train"]["bytes_per_token"] > 1.0


def test_truncated_or_foreign_shard_gives_clear_error(tmp_path, tiny_tokenizer):
    rng = random.Random(9)
    with open(tmp_path / "d.jsonl", "w", encoding="utf-8") as f:
        for _ in range(10):
            f.write(json.dumps({"text": make_text(rng, 100)}) + "\n")
    run = tmp_path / "run"
    manifest = run_prepare(run, tiny_tokenizer, [f"jsonl:{tmp_path / 'd.jsonl'}"])
    path = run / "data" / "tokens" / manifest["splits"]["train"]["shards"][0]["file"]
    with pytest.raises(LlmlabError, match="made with tokenizer"):
        open_shard(path, "0" * 64)
    data = path.read_bytes()
    path.write_bytes(data[:-10])
    with pytest.raises(LlmlabError, match=f"{path.name}: truncated or corrupt"):
        open_shard(path)
    path.write_bytes(b"garbage" * 20)
    with pytest.raises(LlmlabError, match="bad magic"):
        read_header(path)
    path.write_bytes(data[: HEADER_BYTES - 1])
    with pytest.raises(LlmlabError, match="shorter than the 64-byte header"):
        read_header(path)


def test_big_vocabularies_get_uint32_shards(tmp_path):
    assert token_dtype(65_536) == np.uint16 and token_dtype(65_537) == np.uint32
    writer = ShardWriter(tmp_path, "train", token_dtype(100_000), "ab" * 32, shard_tokens=5)
    docs = [np.array([0, 70_000, 99_999]), np.array([0, 3]), np.array([0, 65_536, 1, 2])]
    for doc in docs:
        writer.add(doc)
    shards = writer.close()
    assert [s["docs"] for s in shards] == [2, 1]
    tokens = np.concatenate([open_shard(tmp_path / s["file"], "ab" * 32) for s in shards])
    assert tokens.dtype == np.uint32 and tokens.tolist() == [t for d in docs for t in d.tolist()]
    assert read_header(tmp_path / shards[0]["file"]).itemsize == 4


def test_hf_source_streams_the_named_dataset(monkeypatch):
    """The real download needs the network; here a stand-in `datasets` module checks what the source asks for."""
    import sys
    import types

    calls = []

    def load_dataset(name, config, split, streaming):
        calls.append((name, config, split, streaming))
        return iter([{"content": "first"}, {"content": None}, {"content": "third"}])

    monkeypatch.setitem(sys.modules, "datasets", types.SimpleNamespace(load_dataset=load_dataset))
    docs, _ = docs_of("hf:org/corpus/config=en#content")
    assert calls == [("org/corpus", "en", "train", True)]
    assert [(d.id, d.text, d.source) for d in docs] == [("hf:org/corpus:0", "first", "hf:org/corpus"),
                                                       ("hf:org/corpus:2", "third", "hf:org/corpus")]
