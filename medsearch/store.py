"""The per-collection SQLite store: logged answers, reader feedback and labeled triplets.

One file per collection, `<MEDSEARCH_HOME>/.stores/<name>.sqlite`, beside (not inside) the
collection folder, so rebuilding a collection (which swaps its folder) never touches what people
labeled. WAL mode and a busy timeout let several sessions and processes write at once; every
call opens its own short connection, so a Store can be shared across threads.
"""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from medsearch.home import medsearch_home

SCHEMA = """
CREATE TABLE IF NOT EXISTS answers (
    id INTEGER PRIMARY KEY, created TEXT NOT NULL, question TEXT NOT NULL, answer TEXT NOT NULL,
    generator TEXT NOT NULL, extractive INTEGER NOT NULL, citations TEXT NOT NULL, passages TEXT NOT NULL,
    retrieval_ms REAL NOT NULL, generation_ms REAL NOT NULL, error TEXT NOT NULL DEFAULT '');
CREATE TABLE IF NOT EXISTS feedback (
    id INTEGER PRIMARY KEY, created TEXT NOT NULL, answer_id INTEGER NOT NULL REFERENCES answers(id),
    kind TEXT NOT NULL CHECK (kind IN ('up', 'down', 'wrong_citation')), passage INTEGER, doc_id TEXT,
    user TEXT NOT NULL DEFAULT '');
CREATE TABLE IF NOT EXISTS triplets (
    id INTEGER PRIMARY KEY, created TEXT NOT NULL, updated TEXT NOT NULL, query TEXT NOT NULL,
    positive_id TEXT, positive TEXT, negative_id TEXT, negative TEXT,
    annotator TEXT NOT NULL DEFAULT '', source TEXT NOT NULL CHECK (source IN ('manual', 'mined', 'imported', 'answer')),
    status TEXT NOT NULL DEFAULT 'new' CHECK (status IN ('new', 'incomplete', 'accepted', 'rejected')));
"""


def _now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S%z")


class Store:
    """Answers, feedback and triplets of one collection in one SQLite file."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self._connect() as db:
            db.execute("PRAGMA journal_mode=WAL")
            db.executescript(SCHEMA)

    @classmethod
    def of(cls, collection_name: str, home: str | Path | None = None) -> Store:
        """The store of a collection (created on first use)."""
        return cls(medsearch_home(home) / ".stores" / f"{collection_name}.sqlite")

    @contextmanager
    def _connect(self) -> Iterator[sqlite3.Connection]:
        db = sqlite3.connect(self.path, timeout=30)
        db.row_factory = sqlite3.Row
        try:
            with db:  # one transaction: committed on success, rolled back on error
                yield db
        finally:
            db.close()

    def log_answer(self, question: str, answer: str, generator: str, extractive: bool, citations: list[int],
                   passages: list[dict], retrieval_ms: float, generation_ms: float, error: str = "") -> int:
        """Save one answer with its passages and timings; returns its id."""
        with self._connect() as db:
            cursor = db.execute(
                "INSERT INTO answers (created, question, answer, generator, extractive, citations, passages, "
                "retrieval_ms, generation_ms, error) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (_now(), question, answer, generator, int(extractive), json.dumps(citations),
                 json.dumps(passages, ensure_ascii=False), retrieval_ms, generation_ms, error))
            return int(cursor.lastrowid)

    def add_feedback(self, answer_id: int, kind: str, passage: int | None = None, doc_id: str | None = None,
                     user: str = "") -> int:
        """Thumbs up/down on an answer, or 'wrong_citation' on one of its passages."""
        with self._connect() as db:
            cursor = db.execute("INSERT INTO feedback (created, answer_id, kind, passage, doc_id, user) "
                                "VALUES (?, ?, ?, ?, ?, ?)", (_now(), answer_id, kind, passage, doc_id, user))
            return int(cursor.lastrowid)

    def add_triplet(self, query: str, *, positive_id: str | None = None, positive: str | None = None,
                    negative_id: str | None = None, negative: str | None = None, annotator: str = "",
                    source: str = "manual") -> int:
        """Save a (query, positive, negative) triplet; one without a positive is 'incomplete'."""
        status = "new" if positive and negative else "incomplete"
        with self._connect() as db:
            cursor = db.execute(
                "INSERT INTO triplets (created, updated, query, positive_id, positive, negative_id, negative, "
                "annotator, source, status) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (_now(), _now(), query, positive_id, positive, negative_id, negative, annotator, source, status))
            return int(cursor.lastrowid)

    def rows(self, table: str, limit: int = 1000) -> list[dict]:
        """The newest rows of 'answers', 'feedback' or 'triplets', as dicts."""
        if table not in ("answers", "feedback", "triplets"):
            raise ValueError(f"unknown table {table}")
        with self._connect() as db:
            return [dict(r) for r in db.execute(f"SELECT * FROM {table} ORDER BY id DESC LIMIT ?", (limit,))]

    def export_jsonl(self, table: str, path: str | Path) -> int:
        """Write a table as JSON Lines (oldest first); returns the number of rows."""
        rows = self.rows(table, limit=-1)[::-1]
        with Path(path).open("w", encoding="utf-8") as out:
            for row in rows:
                out.write(json.dumps(row, ensure_ascii=False) + "\n")
        return len(rows)
