"""What every retriever shares: the `Retriever` interface and turning rows into `Hit`s."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Protocol, TypeVar

import numpy as np

from medsearch.filters import Filter
from medsearch.records import Hit


class Retriever(Protocol):
    """Anything that answers a query with scored chunk hits, best first; `where` keeps only chunks whose
    metadata matches (pushed into the index, so k hits come back when k chunks match)."""

    name: str

    def search(self, query: str, k: int = 10, where: Filter | None = None) -> list[Hit]: ...


class Table(Protocol):
    """Index rows → hits: a collection's `corpusdb.ChunkTable`, or a `ChunkTable` in memory."""

    def __len__(self) -> int: ...

    def hits(self, rows: np.ndarray, scores: np.ndarray, retriever: str) -> list[Hit]: ...

    def matching(self, where: Filter) -> np.ndarray: ...

    def rows_of(self, chunk_ids: Sequence[str]) -> np.ndarray: ...


class ChunkTable:
    """Row number → chunk id and document id, in memory (for passages outside a collection)."""

    def __init__(self, chunk_ids: Sequence[str], doc_ids: Sequence[str]) -> None:
        self.chunk_ids = list(chunk_ids)
        self.doc_ids = list(doc_ids)

    def __len__(self) -> int:
        return len(self.chunk_ids)

    def hits(self, rows: np.ndarray, scores: np.ndarray, retriever: str) -> list[Hit]:
        """Hits for the given rows (best first); rows < 0 and non-positive scores are dropped."""
        out: list[Hit] = []
        for row, score in zip(rows.tolist(), scores.tolist()):
            if row < 0 or score <= 0:
                continue
            out.append(Hit(self.chunk_ids[row], self.doc_ids[row], float(score), len(out) + 1, retriever))
        return out

    def rows_of(self, chunk_ids: Sequence[str]) -> np.ndarray:
        """The rows of these chunks, in their order."""
        at = {chunk_id: row for row, chunk_id in enumerate(self.chunk_ids)}
        return np.asarray([at[c] for c in chunk_ids], dtype=np.int64)

    def matching(self, where: Filter) -> np.ndarray:
        raise TypeError("passages outside a collection have no metadata to filter on")


def search_many(retriever: Retriever, queries: Sequence[str], k: int, where: Filter | None = None) -> list[list[Hit]]:
    """Hits for several queries, batched when the retriever can batch (dense encoders can)."""
    batch = getattr(retriever, "search_many", None)
    if where is None:
        return batch(list(queries), k) if batch else [retriever.search(q, k) for q in queries]
    return batch(list(queries), k, where) if batch else [retriever.search(q, k, where) for q in queries]


T = TypeVar("T")
_BESIDE = ThreadPoolExecutor(max_workers=4, thread_name_prefix="medsearch-beside")


def side_by_side(calls: Mapping[str, Callable[[], T]]) -> dict[str, T]:
    """Run independent searches at the same time, the first in this thread: query encoding, BM25 scoring
    and SQLite release the GIL, so a fused search takes about as long as its slowest retriever, not the sum."""
    first, *rest = calls
    started = {name: _BESIDE.submit(calls[name]) for name in rest}
    done = {first: calls[first]()}
    return done | {name: future.result() for name, future in started.items()}


def top_rows(scores: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Indices and values of the k largest scores, best first."""
    k = min(k, len(scores))
    if k <= 0:
        return np.empty(0, dtype=np.int64), np.empty(0, dtype=scores.dtype)
    rows = np.argpartition(-scores, k - 1)[:k]
    rows = rows[np.argsort(-scores[rows], kind="stable")]
    return rows, scores[rows]


def index_hits(retriever, scores: np.ndarray, k: int, where: Filter | None) -> list[Hit]:
    """The top-k of an index's scores as hits: `retriever` has `rows` (index position → table row), `table` and
    `name`; with a filter, positions whose chunk does not match score nothing."""
    if where is not None:
        scores = np.where(np.isin(retriever.rows, retriever.table.matching(where)), scores, 0)
    positions, top = top_rows(scores, k)
    return retriever.table.hits(retriever.rows[positions], top, retriever.name)


def by_document(hits: list[Hit], k: int) -> list[list[Hit]]:
    """The hits of at most k documents, grouped per document in the order of each one's best hit: the best
    first (re-ranked 1..k), then the document's other hits in their order."""
    groups: dict[str, list[Hit]] = {}
    for hit in hits:
        if hit.doc_id in groups:
            groups[hit.doc_id].append(hit)
        elif len(groups) < k:
            groups[hit.doc_id] = [Hit(hit.chunk_id, hit.doc_id, hit.score, len(groups) + 1, hit.retriever)]
    return list(groups.values())


def best_per_document(hits: list[Hit], k: int) -> list[Hit]:
    """Keep each document's best chunk, re-ranked, at most k."""
    return [group[0] for group in by_document(hits, k)]
