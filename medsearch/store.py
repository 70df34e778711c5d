"""The per-collection SQLite store: logged answers, reader feedback, annotators' labels and triplets.

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
from medsearch.jsonl import write_jsonl
from medsearch.records import MedSearchError

SCHEMA = """
CREATE TABLE IF NOT EXISTS answers (
    id INTEGER PRIMARY KEY, created TEXT NOT NULL, question TEXT NOT NULL, answer TEXT NOT NULL,
    generator TEXT NOT NULL, extractive INTEGER NOT NULL, citations TEXT NOT NULL, passages TEXT NOT NULL,
    retrieval_ms REAL NOT NULL, generation_ms REAL NOT NULL, error TEXT NOT NULL DEFAULT '',
    user TEXT NOT NULL DEFAULT '');
CREATE TABLE IF NOT EXISTS feedback (
    id INTEGER PRIMARY KEY, created TEXT NOT NULL, answer_id INTEGER NOT NULL REFERENCES answers(id),
    kind TEXT NOT NULL CHECK (kind IN ('up', 'down', 'wrong_citation')), passage INTEGER, doc_id TEXT,
    user TEXT NOT NULL DEFAULT '');
CREATE TABLE IF NOT EXISTS labels (
    id INTEGER PRIMARY KEY, created TEXT NOT NULL, query TEXT NOT NULL, doc_id TEXT NOT NULL, text TEXT NOT NULL,
    label TEXT NOT NULL CHECK (label IN ('positive', 'negative', 'skip')), annotator TEXT NOT NULL DEFAULT '');
CREATE TABLE IF NOT EXISTS triplets (
    id INTEGER PRIMARY KEY, created TEXT NOT NULL, updated TEXT NOT NULL, query TEXT NOT NULL,
    positive_id TEXT, positive TEXT, negative_id TEXT, negative TEXT,
    annotator TEXT NOT NULL DEFAULT '', source TEXT NOT NULL CHECK (source IN ('manual', 'mined', 'imported', 'answer')),
    status TEXT NOT NULL DEFAULT 'new' CHECK (status IN ('new', 'incomplete', 'accepted', 'rejected')));
CREATE INDEX IF NOT EXISTS triplets_by_query ON triplets (query);
CREATE INDEX IF NOT EXISTS labels_by_annotator ON labels (annotator);
"""


# Columns added since a table was first created: (table, column, definition), applied to older files.
_ADDED = (("answers", "user", "TEXT NOT NULL DEFAULT ''"),)
_TRIPLET = ("query", "positive_id", "positive", "negative_id", "negative")
TABLES = ("answers", "feedback", "labels", "triplets")


def _now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S%z")


def _insert_triplet(db: sqlite3.Connection, values: tuple, annotator: str, source: str) -> int:
    """Insert one triplet (values in `_TRIPLET` order); one without a positive or a negative is 'incomplete'."""
    status = "new" if values[2] and values[4] else "incomplete"
    cursor = db.execute("INSERT INTO triplets (created, updated, query, positive_id, positive, negative_id, negative, "
                        "annotator, source, status) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                        (_now(), _now(), *values, annotator, source, status))
    return _row_id(cursor)


def _add_column(db: sqlite3.Connection, table: str, column: str, definition: str) -> None:
    """Add a column a file made by an older MedSearch lacks (another process may add it at the same time)."""
    if column not in {row[1] for row in db.execute(f"PRAGMA table_info({table})")}:
        try:
            db.execute(f"ALTER TABLE {table} ADD COLUMN {column} {definition}")
        except sqlite3.OperationalError as exc:
            if "duplicate column" not in str(exc):
                raise


def store_path(collection_name: str, home: str | Path | None = None) -> Path:
    """Where a collection's store is, whether or not it exists yet."""
    return medsearch_home(home) / ".stores" / f"{collection_name}.sqlite"


def drop_store(collection_name: str, home: str | Path | None = None, export_to: Path | None = None) -> dict[str, int]:
    """Delete a collection's store (with its -wal and -shm files); with `export_to`, first write each table
    there as `<table>.jsonl`. Returns the rows exported per table."""
    path, exported = store_path(collection_name, home), {}
    if export_to is not None:
        files = {table: Path(export_to) / f"{table}.jsonl" for table in TABLES}
        if any(f.exists() for f in files.values()):
            raise MedSearchError(f"{export_to} already holds an export; choose an empty folder.")
        Path(export_to).mkdir(parents=True, exist_ok=True)
        store = Store(path)
        exported = {table: store.export_jsonl(table, file) for table, file in files.items()}
    for suffix in ("", "-wal", "-shm"):
        path.with_name(path.name + suffix).unlink(missing_ok=True)
    return exported


class Store:
    """Answers, feedback and triplets of one collection in one SQLite file."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self._connect() as db:
            db.execute("PRAGMA journal_mode=WAL")
            db.executescript(SCHEMA)
            for table, column, definition in _ADDED:
                _add_column(db, table, column, definition)

    @classmethod
    def of(cls, collection_name: str, home: str | Path | None = None) -> Store:
        """The store of a collection (created on first use)."""
        return cls(store_path(collection_name, home))

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
                   passages: list[dict], retrieval_ms: float, generation_ms: float, error: str = "",
                   user: str = "") -> int:
        """Save one answer with its passages and timings, and who asked; returns its id."""
        with self._connect() as db:
            cursor = db.execute(
                "INSERT INTO answers (created, question, answer, generator, extractive, citations, passages, "
                "retrieval_ms, generation_ms, error, user) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (_now(), question, answer, generator, int(extractive), json.dumps(citations),
                 json.dumps(passages, ensure_ascii=False), retrieval_ms, generation_ms, error, user))
            return _row_id(cursor)

    def add_feedback(self, answer_id: int, kind: str, passage: int | None = None, doc_id: str | None = None,
                     user: str = "") -> int:
        """Thumbs up/down on an answer, or 'wrong_citation' on one of its passages."""
        with self._connect() as db:
            cursor = db.execute("INSERT INTO feedback (created, answer_id, kind, passage, doc_id, user) "
                                "VALUES (?, ?, ?, ?, ?, ?)", (_now(), answer_id, kind, passage, doc_id, user))
            return _row_id(cursor)

    def add_triplet(self, query: str, *, positive_id: str | None = None, positive: str | None = None,
                    negative_id: str | None = None, negative: str | None = None, annotator: str = "",
                    source: str = "manual") -> int:
        """Save a (query, positive, negative) triplet; one without a positive is 'incomplete'."""
        with self._connect() as db:
            return _insert_triplet(db, (query, positive_id, positive, negative_id, negative), annotator, source)

    def label(self, query: str, doc_id: str, text: str, label: str, annotator: str = "") -> int:
        """An annotator's judgement of one candidate for a query: positive, negative or skip."""
        with self._connect() as db:
            cursor = db.execute("INSERT INTO labels (created, query, doc_id, text, label, annotator) "
                                "VALUES (?, ?, ?, ?, ?, ?)", (_now(), query, doc_id, text, label, annotator))
            return _row_id(cursor)

    def undo_label(self, annotator: str = "") -> dict | None:
        """Remove this annotator's latest label; returns it (None when there is nothing to undo).

        One statement, so two undos at once never both report the same label.
        """
        with self._connect() as db:
            row = db.execute("DELETE FROM labels WHERE id = (SELECT MAX(id) FROM labels WHERE annotator = ?) "
                             "RETURNING *", (annotator,)).fetchone()
            return dict(row) if row else None

    def labels_for(self, query: str) -> dict[str, str]:
        """{doc id: latest label} of a query, over all annotators."""
        with self._connect() as db:
            rows = db.execute("SELECT doc_id, label FROM labels WHERE query = ? ORDER BY id", (query,))
            return {r["doc_id"]: r["label"] for r in rows}

    def labels_of(self, annotator: str, limit: int = 100) -> list[dict]:
        """This annotator's newest labels (query, doc id, label, created)."""
        with self._connect() as db:
            return [dict(r) for r in db.execute("SELECT created, query, doc_id, label FROM labels WHERE annotator = ? "
                                                "ORDER BY id DESC LIMIT ?", (annotator, limit))]

    def annotator_totals(self) -> dict[str, int]:
        """Labels per annotator (skips included), most first."""
        with self._connect() as db:
            rows = db.execute("SELECT annotator, COUNT(*) AS n FROM labels GROUP BY annotator ORDER BY n DESC")
            return {r["annotator"]: r["n"] for r in rows}

    def labeled_queries(self) -> set[str]:
        with self._connect() as db:
            return {r["query"] for r in db.execute("SELECT DISTINCT query FROM labels")}

    def triplets_from_labels(self) -> list[dict]:
        """Seed-format triplets from the labels: every positive of a query with each of its negatives
        (a positive without negatives becomes a pair), from each document's latest label."""
        with self._connect() as db:
            rows = [dict(r) for r in db.execute("SELECT query, doc_id, text, label FROM labels ORDER BY id")]
        latest: dict[tuple[str, str], dict] = {(r["query"], r["doc_id"]): r for r in rows}
        by_query: dict[str, dict[str, list[dict]]] = {}
        for row in latest.values():
            by_query.setdefault(row["query"], {}).setdefault(row["label"], []).append(row)
        out = []
        for query, groups in by_query.items():
            negatives: list[dict | None] = [*groups.get("negative", [])] or [None]
            out += [{"query": query, "positive": p["text"], "negative": n["text"] if n else None,
                     "positive_id": p["doc_id"], "negative_id": n["doc_id"] if n else None}
                    for p in groups.get("positive", []) for n in negatives]
        return out

    def training_triplets(self) -> list[dict]:
        """Everything usable for training in the seed format: labeled, plus stored triplets that are
        complete and not rejected."""
        stored = [{"query": r["query"], "positive": r["positive"], "negative": r["negative"],
                   "positive_id": r["positive_id"], "negative_id": r["negative_id"]}
                  for r in self.rows("triplets", -1)[::-1] if r["positive"] and r["status"] != "rejected"]
        return self.triplets_from_labels() + stored

    def import_triplets(self, triplets: list[dict], source: str = "imported", annotator: str = "") -> int:
        """Save seed-format triplets ({"query", "positive", "negative"}, optional *_id keys) in one transaction;
        a triplet already stored (same query, texts and ids) is skipped, so a retried import adds nothing twice.
        Returns how many were added."""
        added = 0
        with self._connect() as db:
            db.execute("BEGIN IMMEDIATE")  # no other writer between the check and the insert
            for t in triplets:
                values = tuple(t.get(c) for c in _TRIPLET)
                if not db.execute(f"SELECT 1 FROM triplets WHERE {' AND '.join(f'{c} IS ?' for c in _TRIPLET)}",
                                  values).fetchone():
                    _insert_triplet(db, values, annotator, source)
                    added += 1
        return added

    def rows(self, table: str, limit: int = 1000) -> list[dict]:
        """The newest rows of 'answers', 'feedback', 'labels' or 'triplets', as dicts."""
        if table not in TABLES:
            raise ValueError(f"unknown table {table}")
        with self._connect() as db:
            return [dict(r) for r in db.execute(f"SELECT * FROM {table} ORDER BY id DESC LIMIT ?", (limit,))]

    def export_jsonl(self, table: str, path: str | Path) -> int:
        """Write a table as JSON Lines (oldest first); returns the number of rows."""
        return write_jsonl(path, self.rows(table, limit=-1)[::-1])


def _row_id(cursor: sqlite3.Cursor) -> int:
    """The id of the row an INSERT just added."""
    assert cursor.lastrowid is not None
    return cursor.lastrowid
