"""What the served models said and what people thought of it, in one SQLite file (WAL mode, schema migrations).

    store = Store(Path("runs/x/serve.sqlite"))
    store.register_model("chat_dpo", "runs/x/chat_dpo")
    conversation, message = store.start_exchange(model="chat_dpo", messages=[{"role": "user", "content": "Hi"}],
                                                 params={"temperature": 0.7})          # stored before generating
    store.finish_exchange(message, "Hello!", "stop", {"completion_tokens": 3})         # also with partial text
    done = store.start_completion(model="base", prompt="The river", params={})          # POST /v1/completions
    store.finish_completion(done, " flows", "length", {"completion_tokens": 1})
    store.add_feedback(message, "flag", "made up a fact")                              # up / down / flag + reason
    store.review_queue()        # flagged answers first, then a sample of the others
    store.add_label(message, "The ideal answer.")                                      # a labeler's correction
    store.add_comparison(message_a, message_b, "a")                                    # blind A/B (or "tie")
    store.export_sft(path), store.export_dpo(path)                                     # JSONL for llmlab sft / prefs

Tables: models (served versions), conversations, messages (a tree: each message points to the one before it, so a
regenerated answer is a sibling of the first and a continued conversation shares its prefix), feedback, labels
(ideal responses), comparisons (two answers to the same prompt and the winner), completions (POST /v1/completions:
prompt, text, settings). `schema_version` records which migrations ran; `MIGRATIONS[i]` takes the schema from version
i to i + 1, inside one write transaction, so several processes opening an old file at once migrate it once.

Concurrency: one connection per thread (sqlite3 connections must not be shared across threads), WAL so readers
never block the writer, a busy timeout so writers of other threads and processes wait their turn instead of
failing, and every write in a `BEGIN IMMEDIATE` transaction (it takes the write lock up front: no deadlock between
two readers that both want to write). tests/test_store.py writes from threads and processes at once and counts.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
import threading
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from llmlab.errors import LlmlabError
from llmlab.files import atomic_path, write_jsonl

BUSY_TIMEOUT_S = 30.0  # how long a writer waits for the lock; generous: a queue of many writers is normal
FEEDBACK_KINDS = ("up", "down", "flag")
WINNERS = ("a", "b", "tie")

MIGRATIONS = [
    """
    CREATE TABLE models (
        id INTEGER PRIMARY KEY, name TEXT NOT NULL UNIQUE, path TEXT NOT NULL, meta TEXT NOT NULL DEFAULT '{}',
        created REAL NOT NULL);
    CREATE TABLE conversations (id INTEGER PRIMARY KEY, api_key TEXT, created REAL NOT NULL);
    CREATE TABLE messages (
        id INTEGER PRIMARY KEY,
        conversation_id INTEGER NOT NULL REFERENCES conversations(id),
        parent_id INTEGER REFERENCES messages(id),
        role TEXT NOT NULL, content TEXT NOT NULL, tool_call TEXT,
        model TEXT, params TEXT, finish_reason TEXT, usage TEXT,   -- assistant answers made here
        created REAL NOT NULL, finished REAL);
    CREATE INDEX messages_by_parent ON messages(conversation_id, parent_id);
    CREATE TABLE feedback (
        id INTEGER PRIMARY KEY, message_id INTEGER NOT NULL REFERENCES messages(id),
        kind TEXT NOT NULL CHECK (kind IN ('up', 'down', 'flag')), reason TEXT, created REAL NOT NULL);
    CREATE INDEX feedback_by_message ON feedback(message_id);
    CREATE TABLE labels (
        id INTEGER PRIMARY KEY, message_id INTEGER NOT NULL REFERENCES messages(id), ideal TEXT NOT NULL,
        labeler TEXT, created REAL NOT NULL);
    CREATE INDEX labels_by_message ON labels(message_id);
    CREATE TABLE comparisons (
        id INTEGER PRIMARY KEY,
        message_a INTEGER NOT NULL REFERENCES messages(id), message_b INTEGER NOT NULL REFERENCES messages(id),
        winner TEXT NOT NULL CHECK (winner IN ('a', 'b', 'tie')), labeler TEXT, created REAL NOT NULL);
    """,
    """
    CREATE TABLE completions (
        id INTEGER PRIMARY KEY, model TEXT NOT NULL, prompt TEXT NOT NULL, text TEXT NOT NULL DEFAULT '',
        params TEXT NOT NULL, finish_reason TEXT, usage TEXT, api_key TEXT, created REAL NOT NULL, finished REAL);
    """,
]


class Store:
    """The serving database; safe to use from many threads and processes at once (see the module docstring)."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._local = threading.local()
        with self._write() as db:
            db.execute("CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)")
            if db.execute("SELECT COUNT(*) FROM schema_version").fetchone()[0] == 0:
                db.execute("INSERT INTO schema_version VALUES (0)")
            version = db.execute("SELECT version FROM schema_version").fetchone()[0]
            if version > len(MIGRATIONS):
                raise LlmlabError(f"{self.path}: schema version {version} is newer than this llmlab knows "
                                  f"({len(MIGRATIONS)}); upgrade llmlab")
            for script in MIGRATIONS[version:]:
                for statement in filter(str.strip, script.split(";")):
                    db.execute(statement)
            db.execute("UPDATE schema_version SET version = ?", (len(MIGRATIONS),))

    # -- connections -------------------------------------------------------------------------------------------

    def _db(self) -> sqlite3.Connection:
        db = getattr(self._local, "db", None)
        if db is None:
            try:
                db = sqlite3.connect(self.path, timeout=BUSY_TIMEOUT_S, isolation_level=None)
                db.execute("PRAGMA journal_mode=WAL")
            except sqlite3.DatabaseError as e:
                raise LlmlabError(f"{self.path}: cannot open the serving database ({e})") from None
            db.execute("PRAGMA foreign_keys=ON")
            db.row_factory = sqlite3.Row
            self._local.db = db
        return db

    @contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        db = self._db()
        db.execute("BEGIN IMMEDIATE")
        try:
            yield db
        except BaseException:
            db.execute("ROLLBACK")
            raise
        db.execute("COMMIT")

    def close(self) -> None:
        """Close this thread's connection (others close when their threads end)."""
        db = getattr(self._local, "db", None)
        if db is not None:
            db.close()
            self._local.db = None

    def schema_version(self) -> int:
        return self._db().execute("SELECT version FROM schema_version").fetchone()[0]

    # -- models and exchanges (called by the server) -----------------------------------------------------------

    def register_model(self, name: str, path: str, meta: dict | None = None) -> int:
        """Add a served model version (or update its path and meta); returns its id."""
        with self._write() as db:
            db.execute("INSERT INTO models (name, path, meta, created) VALUES (?, ?, ?, ?) ON CONFLICT(name) DO "
                       "UPDATE SET path = excluded.path, meta = excluded.meta",
                       (name, str(path), json.dumps(meta or {}), time.time()))
            return db.execute("SELECT id FROM models WHERE name = ?", (name,)).fetchone()[0]

    def models(self) -> list[dict]:
        rows = self._db().execute("SELECT name, path, meta, created FROM models ORDER BY id").fetchall()
        return [{**dict(r), "meta": json.loads(r["meta"])} for r in rows]

    def start_exchange(self, *, model: str, messages: list[dict], params: dict, api_key: str | None = None,
                       conversation_id: int | None = None) -> tuple[int, int]:
        """Store a request's messages and an empty answer from `model` before generating it.

        With `conversation_id`, messages already in that conversation (same role and content on the same path) are
        reused, so a continued conversation grows its tree and a regenerated answer becomes a sibling of the old.
        Returns (conversation_id, the answer's message id)."""
        now = time.time()
        with self._write() as db:
            if conversation_id is None or db.execute("SELECT 1 FROM conversations WHERE id = ?",
                                                     (conversation_id,)).fetchone() is None:
                conversation_id = db.execute("INSERT INTO conversations (api_key, created) VALUES (?, ?)",
                                             (api_key, now)).lastrowid
            parent = None
            for m in messages:
                found = db.execute(
                    "SELECT id FROM messages WHERE conversation_id = ? AND parent_id IS ? AND role = ? AND content = ?"
                    " AND tool_call IS ? ORDER BY id LIMIT 1",
                    (conversation_id, parent, m["role"], m.get("content") or "", m.get("tool_call"))).fetchone()
                parent = found[0] if found else db.execute(
                    "INSERT INTO messages (conversation_id, parent_id, role, content, tool_call, created) "
                    "VALUES (?, ?, ?, ?, ?, ?)",
                    (conversation_id, parent, m["role"], m.get("content") or "", m.get("tool_call"), now)).lastrowid
            answer = db.execute(
                "INSERT INTO messages (conversation_id, parent_id, role, content, model, params, created) "
                "VALUES (?, ?, 'assistant', '', ?, ?, ?)",
                (conversation_id, parent, model, json.dumps(params), now)).lastrowid
        return conversation_id, answer

    def finish_exchange(self, message_id: int, content: str, finish_reason: str, usage: dict) -> None:
        """Record the answer (whole, or what was made before a disconnect or timeout) and why it ended."""
        with self._write() as db:
            updated = db.execute("UPDATE messages SET content = ?, finish_reason = ?, usage = ?, finished = ? "
                                 "WHERE id = ? AND role = 'assistant'",
                                 (content, finish_reason, json.dumps(usage), time.time(), message_id)).rowcount
        if not updated:
            raise LlmlabError(f"no assistant message {message_id} in {self.path}")

    def start_completion(self, *, model: str, prompt: str, params: dict, api_key: str | None = None) -> int:
        """Store a text completion request (POST /v1/completions) before generating; returns its id. Completions are
        kept apart from the conversations: they are a log of what was asked and answered, not material to label."""
        with self._write() as db:
            return db.execute("INSERT INTO completions (model, prompt, params, api_key, created) "
                              "VALUES (?, ?, ?, ?, ?)",
                              (model, prompt, json.dumps(params), api_key, time.time())).lastrowid

    def finish_completion(self, completion_id: int, text: str, finish_reason: str, usage: dict) -> None:
        """Record the completion's text (whole, or what was made before a disconnect or timeout) and why it ended."""
        with self._write() as db:
            updated = db.execute("UPDATE completions SET text = ?, finish_reason = ?, usage = ?, finished = ? "
                                 "WHERE id = ?",
                                 (text, finish_reason, json.dumps(usage), time.time(), completion_id)).rowcount
        if not updated:
            raise LlmlabError(f"no completion {completion_id} in {self.path}")

    def completion(self, completion_id: int) -> dict:
        row = self._db().execute("SELECT * FROM completions WHERE id = ?", (completion_id,)).fetchone()
        if row is None:
            raise LlmlabError(f"no completion {completion_id} in {self.path}")
        return dict(row)

    # -- reading messages -----------------------------------------------------------------------------------------

    def message(self, message_id: int) -> dict:
        row = self._db().execute("SELECT * FROM messages WHERE id = ?", (message_id,)).fetchone()
        if row is None:
            raise LlmlabError(f"no message {message_id} in {self.path}")
        return dict(row)

    def prompt(self, message_id: int) -> list[dict]:
        """The messages before `message_id`, oldest first, as {"role", "content"(, "tool_call")}."""
        path, parent = [], self.message(message_id)["parent_id"]
        while parent is not None:
            m = self.message(parent)
            path.append({"role": m["role"], "content": m["content"],
                         **({"tool_call": m["tool_call"]} if m["tool_call"] is not None else {})})
            parent = m["parent_id"]
        return path[::-1]

    # -- feedback, labels, comparisons (the web UI) ---------------------------------------------------------------

    def _answer(self, db: sqlite3.Connection, message_id: int) -> sqlite3.Row:
        row = db.execute("SELECT * FROM messages WHERE id = ?", (message_id,)).fetchone()
        if row is None or row["role"] != "assistant" or row["model"] is None:
            raise LlmlabError(f"message {message_id} is not an answer made by a served model")
        return row

    def add_feedback(self, message_id: int, kind: str, reason: str | None = None) -> int:
        """Thumbs up/down, or a flag (which needs a reason) on an answer."""
        if kind not in FEEDBACK_KINDS:
            raise LlmlabError(f"feedback kind must be one of {', '.join(FEEDBACK_KINDS)}, not {kind!r}")
        reason = (reason or "").strip() or None
        if kind == "flag" and reason is None:
            raise LlmlabError("a flag needs a reason (what the answer did wrong)")
        with self._write() as db:
            self._answer(db, message_id)
            return db.execute("INSERT INTO feedback (message_id, kind, reason, created) VALUES (?, ?, ?, ?)",
                              (message_id, kind, reason, time.time())).lastrowid

    def add_label(self, message_id: int, ideal: str, labeler: str | None = None) -> int:
        """A labeler's ideal response to the prompt of answer `message_id` (docs/labeling.md)."""
        if not ideal.strip():
            raise LlmlabError("the ideal response is empty")
        with self._write() as db:
            self._answer(db, message_id)
            return db.execute("INSERT INTO labels (message_id, ideal, labeler, created) VALUES (?, ?, ?, ?)",
                              (message_id, ideal.strip(), labeler, time.time())).lastrowid

    def add_comparison(self, message_a: int, message_b: int, winner: str, labeler: str | None = None) -> int:
        """Which of two answers to the same prompt is better: "a", "b" or "tie"."""
        if winner not in WINNERS:
            raise LlmlabError(f"winner must be one of {', '.join(WINNERS)}, not {winner!r}")
        with self._write() as db:
            a, b = self._answer(db, message_a), self._answer(db, message_b)
            if message_a == message_b or a["parent_id"] != b["parent_id"]:
                raise LlmlabError(f"messages {message_a} and {message_b} are not two answers to the same prompt")
            return db.execute("INSERT INTO comparisons (message_a, message_b, winner, labeler, created) "
                              "VALUES (?, ?, ?, ?, ?)", (message_a, message_b, winner, labeler, time.time())).lastrowid

    def review_queue(self, limit: int = 20) -> list[dict]:
        """Answers waiting for a labeler: flagged ones first (oldest first), then a sample of the others (in a fixed
        pseudo-random order of ids, so the sample is not just the newest or oldest). An answer leaves the queue once
        it has an ideal response or its prompt has a comparison."""
        db = self._db()
        waiting = ("m.role = 'assistant' AND m.model IS NOT NULL AND m.finished IS NOT NULL "
                   "AND NOT EXISTS (SELECT 1 FROM labels l WHERE l.message_id = m.id) "
                   "AND NOT EXISTS (SELECT 1 FROM comparisons c JOIN messages x ON x.id IN (c.message_a, c.message_b)"
                   " WHERE x.parent_id IS m.parent_id AND x.conversation_id = m.conversation_id)")
        flagged = db.execute(f"SELECT m.id FROM messages m WHERE {waiting} AND EXISTS (SELECT 1 FROM feedback f "
                             f"WHERE f.message_id = m.id AND f.kind = 'flag') ORDER BY m.id LIMIT ?", (limit,))
        ids = [r[0] for r in flagged.fetchall()]
        if len(ids) < limit:
            others = db.execute(f"SELECT m.id FROM messages m WHERE {waiting} AND NOT EXISTS (SELECT 1 FROM feedback "
                                f"f WHERE f.message_id = m.id AND f.kind = 'flag')").fetchall()
            sample = sorted((r[0] for r in others), key=_shuffle_key)
            ids += sample[:limit - len(ids)]
        return [self.review_item(i) for i in ids]

    def review_item(self, message_id: int) -> dict:
        m = self.message(message_id)
        feedback = self._db().execute("SELECT kind, reason FROM feedback WHERE message_id = ? ORDER BY id",
                                      (message_id,)).fetchall()
        return {"message_id": message_id, "conversation_id": m["conversation_id"], "model": m["model"],
                "prompt": self.prompt(message_id), "answer": m["content"], "finish_reason": m["finish_reason"],
                "feedback": [dict(f) for f in feedback], "flagged": any(f["kind"] == "flag" for f in feedback)}

    def asked(self) -> set[str]:
        """Every user message stored so far."""
        return {r[0] for r in self._db().execute("SELECT DISTINCT content FROM messages WHERE role = 'user'")}

    def counts(self) -> dict:
        db = self._db()
        return {table: db.execute(f"SELECT COUNT(*) FROM {table}").fetchone()[0]
                for table in ("models", "conversations", "messages", "feedback", "labels", "comparisons",
                              "completions")}

    # -- what labelers made, for training and the arena -----------------------------------------------------------

    def corrections(self) -> list[dict]:
        """Every labelled answer, newest label per answer: {"message_id", "model", "prompt", "answer", "ideal",
        "flagged", "reasons"}."""
        rows = self._db().execute("SELECT message_id, ideal FROM labels WHERE id IN "
                                  "(SELECT MAX(id) FROM labels GROUP BY message_id) ORDER BY message_id").fetchall()
        out = []
        for r in rows:
            item = self.review_item(r["message_id"])
            out.append({"message_id": item["message_id"], "model": item["model"], "prompt": item["prompt"],
                        "answer": item["answer"], "ideal": r["ideal"], "flagged": item["flagged"],
                        "reasons": [f["reason"] for f in item["feedback"] if f["kind"] == "flag"]})
        return out

    def comparison_rows(self) -> list[dict]:
        """{"prompt", "model_a", "model_b", "answer_a", "answer_b", "winner"} for every comparison, oldest first."""
        rows = self._db().execute(
            "SELECT c.message_a, c.winner, a.model AS model_a, b.model AS model_b, a.content AS answer_a, "
            "b.content AS answer_b FROM comparisons c JOIN messages a ON a.id = c.message_a "
            "JOIN messages b ON b.id = c.message_b ORDER BY c.id").fetchall()
        return [{"prompt": self.prompt(r["message_a"]), **{k: r[k] for k in
                 ("model_a", "model_b", "answer_a", "answer_b", "winner")}} for r in rows]

    def export_sft(self, path: Path) -> int:
        """Ideal responses as SFT `messages` JSONL (llmlab.tokenizer.conversations); returns the row count."""
        rows = [{"messages": c["prompt"] + [{"role": "assistant", "content": c["ideal"]}],
                 "source": "flywheel_label", "message_id": c["message_id"]} for c in self.corrections()]
        return write_jsonl(path, rows)

    def export_dpo(self, path: Path) -> int:
        """Preference pairs as prompt/chosen/rejected JSONL: each ideal response over the answer it corrects, and
        each decided comparison (ties are dropped, docs/labeling.md). Returns the row count."""
        rows = [{"prompt": c["prompt"], "chosen": c["ideal"], "rejected": c["answer"], "kind": "correction",
                 "message_id": c["message_id"]} for c in self.corrections()]
        for c in self.comparison_rows():
            if c["winner"] != "tie":
                win, lose = ("a", "b") if c["winner"] == "a" else ("b", "a")
                rows.append({"prompt": c["prompt"], "chosen": c[f"answer_{win}"], "rejected": c[f"answer_{lose}"],
                             "kind": "comparison"})
        return write_jsonl(path, [r for r in rows if r["rejected"].strip() and r["chosen"] != r["rejected"]])


def _shuffle_key(message_id: int) -> int:
    """A fixed pseudo-random rank of an id: the queue's sample is the same on every call."""
    return int.from_bytes(hashlib.sha256(str(message_id).encode()).digest()[:8], "big")
