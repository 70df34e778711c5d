"""A collection's documents and chunks in one SQLite file, read lazily and changed by generations.

Every row records the generation that added it and the one that retired it (replaced or deleted). A
reader at generation G sees the rows added at or before G and not retired by then, so a writer can add
and retire rows for G + 1 while readers keep searching G; the manifest names the current generation and
is switched last. Chunk rows are numbered once and never reused: the number is the id every index
stores (bm25 positions map to it, FAISS and Milvus keep it as the vector id).
"""

from __future__ import annotations

import json
import sqlite3
import threading
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from pathlib import Path

import numpy as np

from medsearch.filters import Filter
from medsearch.records import Chunk, Document, Hit, MedSearchError

FILE = "corpus.sqlite"
_SCHEMA = """
CREATE TABLE IF NOT EXISTS documents (row INTEGER PRIMARY KEY AUTOINCREMENT, id TEXT NOT NULL, title TEXT,
    source TEXT, text TEXT, metadata TEXT, added INTEGER NOT NULL, retired INTEGER);
CREATE UNIQUE INDEX IF NOT EXISTS documents_live ON documents(id) WHERE retired IS NULL;
CREATE INDEX IF NOT EXISTS documents_id ON documents(id);
CREATE TABLE IF NOT EXISTS chunks (row INTEGER PRIMARY KEY AUTOINCREMENT, id TEXT NOT NULL, doc_id TEXT NOT NULL,
    position INTEGER, title TEXT, text TEXT, metadata TEXT, tokens TEXT, added INTEGER NOT NULL, retired INTEGER);
CREATE INDEX IF NOT EXISTS chunks_id ON chunks(id);
CREATE INDEX IF NOT EXISTS chunks_doc ON chunks(doc_id);
CREATE INDEX IF NOT EXISTS chunks_added ON chunks(added);
CREATE TABLE IF NOT EXISTS facets (col TEXT NOT NULL, value TEXT NOT NULL, row INTEGER NOT NULL);
CREATE INDEX IF NOT EXISTS facets_value ON facets(col, value);
"""
_SEEN = "added <= :gen AND (retired IS NULL OR retired > :gen)"


def facet_value(value: object) -> str | None:
    """A metadata value as filters compare it (text), or None when it is not a plain value."""
    if not isinstance(value, (str, int, float, bool)):
        return None
    text = str(value)
    return text if text.strip() else None


class CorpusDB:
    """The SQLite file of one collection folder; one connection per thread."""

    def __init__(self, path: Path, writable: bool = False) -> None:
        self.path, self.writable = path, writable
        self._local = threading.local()

    def connect(self) -> sqlite3.Connection:
        conn = getattr(self._local, "conn", None)
        if conn is None:
            uri = f"file:{self.path}?mode={'rwc' if self.writable else 'ro'}"
            conn = sqlite3.connect(uri, uri=True, timeout=60, check_same_thread=False, isolation_level=None)
            if self.writable:
                conn.executescript(_SCHEMA)
            self._local.conn = conn
        return conn

    def close(self) -> None:
        conn = getattr(self._local, "conn", None)
        if conn is not None:
            conn.close()
            self._local.conn = None

    # --- reading at a generation -------------------------------------------------------------------
    def document(self, doc_id: str, gen: int) -> Document | None:
        row = self.connect().execute(f"SELECT id, text, title, source, metadata FROM documents WHERE id = :id AND {_SEEN}",
                                     {"id": doc_id, "gen": gen}).fetchone()
        return Document(row[0], row[1], row[2], row[3], json.loads(row[4])) if row else None

    def chunk(self, chunk_id: str, gen: int) -> Chunk | None:
        row = self.connect().execute(f"SELECT {_CHUNK} FROM chunks WHERE id = :id AND {_SEEN}",
                                     {"id": chunk_id, "gen": gen}).fetchone()
        return _chunk(row) if row else None

    def documents(self, gen: int) -> Iterator[Document]:
        cursor = self.connect().execute(f"SELECT id, text, title, source, metadata FROM documents WHERE {_SEEN} "
                                        "ORDER BY row", {"gen": gen})
        for row in cursor:
            yield Document(row[0], row[1], row[2], row[3], json.loads(row[4]))

    def chunks(self, gen: int) -> Iterator[Chunk]:
        cursor = self.connect().execute(f"SELECT {_CHUNK} FROM chunks WHERE {_SEEN} ORDER BY row", {"gen": gen})
        return (_chunk(row) for row in cursor)

    def tokens(self, gen: int, added_after: int = 0) -> Iterator[tuple[int, list[str]]]:
        """Chunk rows seen at `gen` (added after generation `added_after`) and their saved tokens, in row order."""
        cursor = self.connect().execute(f"SELECT row, tokens FROM chunks WHERE {_SEEN} AND added > :after ORDER BY row",
                                        {"gen": gen, "after": added_after})
        return ((row, joined.split(" ") if joined else []) for row, joined in cursor)

    def texts(self, rows: Sequence[int] | np.ndarray) -> list[str]:
        """What dense models encode for these chunk rows: title, newline, text."""
        found = dict(self.connect().execute(
            f"SELECT row, CASE WHEN title != '' THEN title || char(10) || text ELSE text END FROM chunks "
            f"WHERE row IN ({','.join('?' * len(rows))})", [int(r) for r in rows]))
        return [found[int(r)] for r in rows]

    def rows_of(self, chunk_ids: Sequence[str], gen: int) -> list[int]:
        """The rows of these chunks as generation `gen` sees them, in their order."""
        names = [f":c{i}" for i in range(len(chunk_ids))]
        found = dict(self.connect().execute(
            f"SELECT id, row FROM chunks WHERE id IN ({','.join(names)}) AND {_SEEN}",
            {"gen": gen, **{name[1:]: c for name, c in zip(names, chunk_ids)}}))
        return [found[c] for c in chunk_ids]

    def rows(self, gen: int, added_after: int = 0) -> np.ndarray:
        """Chunk rows seen at `gen` (added after generation `added_after`), in order."""
        found = self.connect().execute(f"SELECT row FROM chunks WHERE {_SEEN} AND added > :after ORDER BY row",
                                       {"gen": gen, "after": added_after})
        return np.fromiter((r for (r,) in found), dtype=np.int64)

    def retired_rows(self, gen: int, since: int) -> np.ndarray:
        """Chunk rows retired after generation `since`, up to `gen`."""
        found = self.connect().execute("SELECT row FROM chunks WHERE retired > ? AND retired <= ? ORDER BY row",
                                       (since, gen))
        return np.fromiter((r for (r,) in found), dtype=np.int64)

    def hits(self, rows: Sequence[int], scores: Sequence[float], retriever: str, gen: int) -> list[Hit]:
        """Hits for index rows (best first): rows < 0, rows not seen at `gen` and non-positive scores dropped."""
        wanted = [int(r) for r, s in zip(rows, scores) if r >= 0 and s > 0]
        if not wanted:
            return []
        found = {row: (cid, did) for row, cid, did in self.connect().execute(
            f"SELECT row, id, doc_id FROM chunks WHERE row IN ({','.join('?' * len(wanted))}) "
            f"AND added <= ? AND (retired IS NULL OR retired > ?)", [*wanted, gen, gen])}
        out: list[Hit] = []
        for row, score in zip(rows, scores):
            if int(row) in found and score > 0:
                cid, did = found[int(row)]
                out.append(Hit(cid, did, float(score), len(out) + 1, retriever))
        return out

    def matching(self, where: Filter, gen: int) -> np.ndarray:
        """Chunk rows seen at `gen` whose metadata passes the filter, in order."""
        query, params = f"SELECT row FROM chunks WHERE {_SEEN}", dict[str, object](gen=gen)
        for n, (col, values) in enumerate(sorted(where.wanted.items())):
            names = {f"v{n}_{i}": v for i, v in enumerate(sorted(values))}
            query += (f" AND row IN (SELECT row FROM facets WHERE col = :c{n} AND value IN "
                      f"({','.join(':' + k for k in names)}))")
            params |= {f"c{n}": col, **names}
        return np.fromiter((r for (r,) in self.connect().execute(query + " ORDER BY row", params)), dtype=np.int64)

    def facets(self, gen: int, max_values: int) -> dict[str, list[str]]:
        """{column: sorted values} of columns with 2..max_values distinct values among chunks seen at `gen`."""
        found = self.connect().execute(
            f"SELECT col, value FROM (SELECT DISTINCT col, value FROM facets WHERE row IN "
            f"(SELECT row FROM chunks WHERE {_SEEN})) ORDER BY col, value", {"gen": gen})
        columns: dict[str, list[str]] = {}
        for col, value in found:
            columns.setdefault(col, []).append(value)
        return {c: v for c, v in columns.items() if 2 <= len(v) <= max_values}

    def metadata(self, rows: Sequence[int] | np.ndarray) -> list[dict[str, str]]:
        """The filterable metadata ({column: value as text}) of these chunk rows."""
        found: dict[int, dict[str, str]] = {int(r): {} for r in rows}
        for start in range(0, len(rows), 5000):
            part = [int(r) for r in rows[start:start + 5000]]
            for row, col, value in self.connect().execute(
                    f"SELECT row, col, value FROM facets WHERE row IN ({','.join('?' * len(part))})", part):
                found[row][col] = value
        return [found[int(r)] for r in rows]

    def metadata_columns(self, gen: int) -> list[str]:
        """Metadata columns of the chunks seen at `gen`."""
        return [c for (c,) in self.connect().execute(
            f"SELECT DISTINCT col FROM facets WHERE row IN (SELECT row FROM chunks WHERE {_SEEN}) ORDER BY col",
            {"gen": gen})]

    def count(self, table: str, gen: int) -> int:
        return self.connect().execute(f"SELECT count(*) FROM {table} WHERE {_SEEN}", {"gen": gen}).fetchone()[0]

    # --- writing a generation ----------------------------------------------------------------------
    def add(self, documents: Sequence[Document], chunks: Sequence[Chunk], tokens: Sequence[list[str]], gen: int) -> None:
        """Add documents and their chunks as of generation `gen`, in one transaction."""
        conn = self.connect()
        try:
            conn.execute("BEGIN IMMEDIATE")
            conn.executemany("INSERT INTO documents (id, title, source, text, metadata, added) VALUES (?, ?, ?, ?, ?, ?)",
                             [(d.id, d.title, d.source, d.text, json.dumps(d.metadata, ensure_ascii=False), gen)
                              for d in documents])
            for chunk, toks in zip(chunks, tokens):
                row = conn.execute("INSERT INTO chunks (id, doc_id, position, title, text, metadata, tokens, added) "
                                   "VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                                   (chunk.id, chunk.doc_id, chunk.position, chunk.title, chunk.text,
                                    json.dumps(chunk.metadata, ensure_ascii=False), " ".join(toks), gen)).lastrowid
                conn.executemany("INSERT INTO facets VALUES (?, ?, ?)",
                                 [(col, text, row) for col, value in chunk.metadata.items()
                                  if (text := facet_value(value)) is not None])
            conn.execute("COMMIT")
        except sqlite3.IntegrityError:
            conn.execute("ROLLBACK")
            raise MedSearchError(f"Duplicate document ids: {', '.join(_duplicates(conn, documents))}.") from None
        except BaseException:
            conn.execute("ROLLBACK")
            raise

    def retire(self, doc_ids: Iterable[str], gen: int) -> int:
        """Retire the live documents with these ids and their chunks as of generation `gen`; how many documents."""
        ids = list(dict.fromkeys(doc_ids))
        conn, retired = self.connect(), 0
        conn.execute("BEGIN IMMEDIATE")
        try:
            for start in range(0, len(ids), 500):
                part = ids[start:start + 500]
                marks = ",".join("?" * len(part))
                retired += conn.execute(f"UPDATE documents SET retired = ? WHERE retired IS NULL AND id IN ({marks})",
                                        [gen, *part]).rowcount
                conn.execute(f"UPDATE chunks SET retired = ? WHERE retired IS NULL AND doc_id IN ({marks})", [gen, *part])
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        return retired

    def settle(self, gen: int) -> np.ndarray:
        """Undo what a killed writer left beyond generation `gen`, and drop rows retired by `gen` (no current
        reader sees them). Returns the chunk rows that were added beyond `gen` and are now gone."""
        conn = self.connect()
        conn.execute("BEGIN IMMEDIATE")
        try:
            gone = np.fromiter((r for (r,) in conn.execute("SELECT row FROM chunks WHERE added > ? OR retired <= ?",
                                                            (gen, gen))), dtype=np.int64)
            for table in ("documents", "chunks"):
                conn.execute(f"DELETE FROM {table} WHERE added > ? OR retired <= ?", (gen, gen))
                conn.execute(f"UPDATE {table} SET retired = NULL WHERE retired > ?", (gen,))
            conn.execute("DELETE FROM facets WHERE row NOT IN (SELECT row FROM chunks)")
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        return gone


_CHUNK = "id, doc_id, text, title, position, metadata"


def _chunk(row: tuple) -> Chunk:
    return Chunk(row[0], row[1], row[2], row[3], row[4], json.loads(row[5]))


def _duplicates(conn: sqlite3.Connection, documents: Sequence[Document]) -> list[str]:
    ids = [d.id for d in documents]
    seen, dupes = set(), []
    for doc_id in ids:
        if doc_id in seen and doc_id not in dupes:
            dupes.append(doc_id)
        seen.add(doc_id)
    live = [d for d in ids if conn.execute("SELECT 1 FROM documents WHERE id = ? AND retired IS NULL", (d,)).fetchone()]
    return (dupes + live)[:5]


class Rows(Mapping):
    """Documents or chunks seen at one generation, looked up by id on demand (never all read at once).

    `guard` runs each read and raises when the folder no longer holds the build the rows belong to."""

    def __init__(self, db: CorpusDB, gen: int, kind: str, size: int, guard: Callable) -> None:
        self.db, self.gen, self.kind, self.size, self.guard = db, gen, kind, size, guard

    def __getitem__(self, key: str):
        find = self.db.document if self.kind == "documents" else self.db.chunk
        found = self.guard(lambda: find(key, self.gen))
        if found is None:
            raise KeyError(key)
        return found

    def __iter__(self) -> Iterator[str]:
        return (row.id for row in self.values())

    def values(self):
        """Every row, streamed from the file in order."""
        return self.guard(lambda: self.db.documents(self.gen) if self.kind == "documents" else self.db.chunks(self.gen))

    def items(self):
        return ((row.id, row) for row in self.values())

    def __len__(self) -> int:
        return self.guard(lambda: self.size)


class ChunkTable:
    """Index row numbers → hits for the chunks one generation sees; indexes hold these row numbers."""

    def __init__(self, db: CorpusDB, gen: int, size: int) -> None:
        self.db, self.gen, self.size = db, gen, size

    def __len__(self) -> int:
        return self.size

    def hits(self, rows: np.ndarray, scores: np.ndarray, retriever: str) -> list[Hit]:
        return self.db.hits(np.asarray(rows).tolist(), np.asarray(scores).tolist(), retriever, self.gen)

    def matching(self, where: Filter) -> np.ndarray:
        return self.db.matching(where, self.gen)

    def rows_of(self, chunk_ids: Sequence[str]) -> np.ndarray:
        return np.asarray(self.db.rows_of(chunk_ids, self.gen), dtype=np.int64)

    def texts(self, rows: np.ndarray) -> list[str]:
        return self.db.texts(rows)
