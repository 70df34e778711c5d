"""Vectors on disk and the stores that search them: FAISS (embedded, the default) or Milvus (`medsearch.milvus`).

Every store keeps chunk row numbers as vector ids and answers `search(queries, k, where)` with
(scores, rows) arrays padded with 0 / -1. Each model's encoded vectors are also kept, append-only, in
`vectors.f32` + `rows.i64`, so re-indexing (a new index kind, compaction, moving to Milvus) never
re-encodes.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Literal, TypeAlias

import faiss
import numpy as np

from medsearch.filters import Filter
from medsearch.records import MedSearchError

HNSW_THRESHOLD = 50_000      # exact search below, HNSW above (unless asked otherwise)
HNSW_EF_SEARCH = 512         # HNSW candidates per search (at least 2k): recall@10 0.90 vs 0.79 at 128, 1.2 ms a
                             # query at 1M near-duplicate vectors (measured once, bench/scale.md)
EXACT_FILTERED = 20_000      # a filter matching at most this many chunks is searched exactly
COMPACT_SHARE = 0.25         # rebuild an index when this share of its vectors is deleted
INDEX_KINDS = ("auto", "flat", "hnsw", "ivfpq")
Resolve = Callable[[Filter], np.ndarray]
VectorStore: TypeAlias = "FaissStore | MilvusStore"  # what a manifest entry opens as (`open_store`)
if TYPE_CHECKING:
    from medsearch.milvus import MilvusStore
# One OpenMP thread per search (set in the searching thread: OpenMP keeps the setting per thread). Sessions
# search in threads of their own, and on a busy 2-core server FAISS's thread team waits on a core someone else
# holds (a 10k-vector exact search: 32 ms with 2 threads, 0.4 ms with one, measured while another process kept
# one core busy). Builds use every core (`_all_cores`).


class VectorFile:
    """One model's vectors in row order: `rows.i64` (int64 row numbers) and `vectors.f32` (float32 × dim)."""

    def __init__(self, folder: Path, dim: int) -> None:
        self.folder, self.dim = folder, dim

    def __len__(self) -> int:
        path = self.folder / "rows.i64"
        return min(path.stat().st_size // 8 if path.exists() else 0, self._stored_vectors())

    def _stored_vectors(self) -> int:
        path = self.folder / "vectors.f32"
        return path.stat().st_size // (4 * self.dim) if path.exists() else 0

    def append(self, rows: np.ndarray, vectors: np.ndarray) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        for name, data in (("vectors.f32", np.ascontiguousarray(vectors, dtype=np.float32)),
                           ("rows.i64", np.ascontiguousarray(rows, dtype=np.int64))):
            with open(self.folder / name, "ab") as out:
                out.write(data.tobytes())
                out.flush()
                os.fsync(out.fileno())

    def truncate(self, count: int) -> None:
        """Forget vectors beyond the first `count` (what a killed writer appended)."""
        for name, width in (("vectors.f32", 4 * self.dim), ("rows.i64", 8)):
            path = self.folder / name
            if path.exists() and path.stat().st_size > count * width:
                os.truncate(path, count * width)

    def all(self, count: int | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Row numbers and vectors (memory-mapped) of the first `count` entries."""
        count = len(self) if count is None else count
        if count == 0:
            return np.empty(0, np.int64), np.empty((0, self.dim), np.float32)
        rows = np.memmap(self.folder / "rows.i64", dtype=np.int64, mode="r", shape=(count,))
        vectors = np.memmap(self.folder / "vectors.f32", dtype=np.float32, mode="r", shape=(count, self.dim))
        return rows, vectors

    def read(self, rows: np.ndarray, count: int | None = None) -> np.ndarray:
        """Vectors of these row numbers (all stored)."""
        stored, vectors = self.all(count)
        at = np.searchsorted(stored, rows)
        return np.asarray(vectors[at], dtype=np.float32)


@contextmanager
def _all_cores() -> Iterator[None]:
    faiss.omp_set_num_threads(os.cpu_count() or 1)
    try:
        yield
    finally:
        faiss.omp_set_num_threads(1)


def choose_kind(asked: str, count: int) -> str:
    """The FAISS index kind: what was asked, or exact below HNSW_THRESHOLD chunks and HNSW above."""
    if asked not in INDEX_KINDS:
        raise MedSearchError(f"Unknown vector index '{asked}': choose one of {', '.join(INDEX_KINDS)}.")
    return asked if asked != "auto" else "hnsw" if count >= HNSW_THRESHOLD else "flat"


def _new_index(kind: str, dim: int, sample: np.ndarray) -> tuple[faiss.Index, dict]:
    base: faiss.Index
    if kind == "hnsw":
        base = faiss.IndexHNSWFlat(dim, 32, faiss.METRIC_INNER_PRODUCT)
        base.hnsw.efConstruction, base.hnsw.efSearch = 80, HNSW_EF_SEARCH
        params = {"M": 32, "efConstruction": 80, "efSearch": HNSW_EF_SEARCH}
    elif kind == "ivfpq":
        nlist = int(max(1, min(4 * np.sqrt(len(sample)), len(sample) // 39)))
        m = next(m for m in (48, 32, 24, 16, 12, 8, 6, 4, 3, 2, 1) if dim % m == 0)
        base = faiss.IndexIVFPQ(faiss.IndexFlatIP(dim), dim, nlist, m, 8, faiss.METRIC_INNER_PRODUCT)
        base.train(np.ascontiguousarray(sample, dtype=np.float32))
        base.nprobe = min(nlist, 16)
        params = {"nlist": nlist, "m": m, "nbits": 8, "nprobe": min(nlist, 16)}
    else:
        base, params = faiss.IndexFlatIP(dim), {}
    return faiss.IndexIDMap2(base), params


class FaissStore:
    """A FAISS index whose ids are chunk rows; deleted rows are kept out by an id selector until compaction."""

    kind: Literal["faiss"] = "faiss"

    def __init__(self, folder: Path, index: faiss.Index, described: dict, removed: np.ndarray,
                 resolve: Resolve | None = None) -> None:
        self.folder, self.index, self.described, self.removed = folder, index, described, removed
        self.resolve = resolve
        self.file = VectorFile(folder, described["dim"])

    @classmethod
    def build(cls, folder: Path, asked: str, resolve: Resolve | None, dim: int,
              live: np.ndarray | None = None) -> FaissStore:
        """An index of the vectors stored in `folder` (only rows in `live`, when given)."""
        file = VectorFile(folder, dim)
        rows, vectors = file.all()
        if live is not None:
            keep = np.isin(rows, live)
            rows, vectors = rows[keep], vectors[keep]
        kind = choose_kind(asked, len(rows))
        sample = vectors[np.sort(np.random.default_rng(0).permutation(len(rows))[:100_000])] if kind == "ivfpq" else vectors[:0]
        with _all_cores():
            index, params = _new_index(kind, dim, sample)
            for start in range(0, len(rows), 50_000):
                index.add_with_ids(np.ascontiguousarray(vectors[start:start + 50_000]), np.asarray(rows[start:start + 50_000]))
        described = {"kind": "faiss", "index": kind, "asked": asked, "params": params, "dim": dim,
                     "metric": "inner_product", "vectors": len(file)}
        return cls(folder, index, described, np.empty(0, np.int64), resolve)

    @classmethod
    def of(cls, folder: Path, vectors: np.ndarray, asked: str = "auto", rows: np.ndarray | None = None,
           resolve: Resolve | None = None) -> FaissStore:
        """A store of these vectors (ids 0..n-1 unless `rows` are given), kept in `folder`."""
        rows = np.arange(len(vectors), dtype=np.int64) if rows is None else np.asarray(rows, dtype=np.int64)
        VectorFile(folder, vectors.shape[1]).append(rows, vectors)
        return cls.build(folder, asked, resolve, vectors.shape[1])

    @classmethod
    def open(cls, folder: Path, described: dict, resolve: Resolve | None = None) -> FaissStore:
        index = faiss.read_index(str(folder / described["file"]))
        removed = np.load(folder / described["removed"]) if described.get("removed") else np.empty(0, np.int64)
        return cls(folder, index, dict(described), removed, resolve)

    def describe(self) -> dict:
        return dict(self.described)

    def __len__(self) -> int:
        return self.index.ntotal - len(self.removed)

    @property
    def index_kind(self) -> str:
        return self.described["index"]

    def add(self, rows: np.ndarray, vectors: np.ndarray, metadata: Sequence[Mapping[str, object]] = ()) -> None:
        if len(rows):
            with _all_cores():
                self.index.add_with_ids(np.ascontiguousarray(vectors, dtype=np.float32), np.asarray(rows, dtype=np.int64))

    def remove(self, rows: np.ndarray) -> None:
        self.removed = np.union1d(self.removed, np.asarray(rows, dtype=np.int64))

    def compacted(self, live: np.ndarray) -> FaissStore:
        """This store, or a rebuilt one without deleted vectors once they are COMPACT_SHARE of the index."""
        if len(self.removed) <= COMPACT_SHARE * max(self.index.ntotal, 1):
            return self
        return FaissStore.build(self.folder, self.described["asked"], self.resolve, self.described["dim"], live)

    def vectors(self, rows: np.ndarray) -> np.ndarray:
        """The stored vectors of these rows, in their order."""
        return self.file.read(np.asarray(rows, dtype=np.int64))

    def save(self, tag: str) -> dict:
        """Write the index (and deleted rows) under names ending in `tag`; returns the description to keep."""
        self.described |= {"file": f"index-{tag}.faiss", "vectors": len(self.file),
                           "removed": f"removed-{tag}.npy" if len(self.removed) else None}
        faiss.write_index(self.index, str(self.folder / self.described["file"]))
        if len(self.removed):
            np.save(self.folder / self.described["removed"], self.removed)
        return self.describe()

    def search(self, queries: np.ndarray, k: int, where: Filter | None = None) -> tuple[np.ndarray, np.ndarray]:
        faiss.omp_set_num_threads(1)
        queries = np.ascontiguousarray(queries, dtype=np.float32)
        allowed = self.resolve(where) if where is not None and self.resolve else None
        if allowed is not None and len(allowed) <= EXACT_FILTERED:
            return self._exact(queries, k, allowed)
        selector: faiss.IDSelector | None = None
        if allowed is not None:
            selector = faiss.IDSelectorBatch(allowed)
        elif len(self.removed):
            selector = faiss.IDSelectorNot(faiss.IDSelectorBatch(self.removed))
        k = max(1, min(k, len(self)))
        if self.index_kind == "hnsw":
            params = faiss.SearchParametersHNSW(efSearch=max(HNSW_EF_SEARCH, 2 * k))  # type: ignore[attr-defined]
        elif selector is None:
            return self.index.search(queries, k)
        else:
            # faiss's generated stubs lose these classes' keyword arguments
            params = (faiss.SearchParametersIVF(nprobe=self.described["params"]["nprobe"])  # type: ignore[call-arg]
                      if self.index_kind == "ivfpq" else faiss.SearchParameters())
        if selector is not None:
            params.sel = selector
        return self.index.search(queries, k, params=params)

    def _exact(self, queries: np.ndarray, k: int, allowed: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Inner products with exactly the allowed rows (read from the vector file)."""
        scores = np.zeros((len(queries), k), np.float32)
        rows = np.full((len(queries), k), -1, np.int64)
        if not len(allowed):
            return scores, rows
        sims = queries @ self.file.read(allowed, self.described.get("vectors")).T
        top = min(k, len(allowed))
        best = np.argsort(-sims, axis=1, kind="stable")[:, :top]
        scores[:, :top] = np.take_along_axis(sims, best, axis=1)
        rows[:, :top] = allowed[best]
        return scores, rows


def store_choices() -> list[str]:
    """The vector stores this server offers: FAISS, and Milvus when $MEDSEARCH_MILVUS_URI names a server
    (visitors choose among these; they never type an address)."""
    return ["faiss"] + (["milvus"] if os.environ.get("MEDSEARCH_MILVUS_URI") else [])


def open_store(folder: Path, described: dict, resolve: Resolve | None = None) -> VectorStore:
    """The store a manifest entry describes: FAISS in `folder`, or a Milvus collection."""
    return milvus_store(described) if described["kind"] == "milvus" else FaissStore.open(folder, described, resolve)


def milvus_store(described: dict) -> MilvusStore:
    """The Milvus collection a manifest entry describes (pymilvus is imported only for these)."""
    from medsearch.milvus import MilvusStore

    return MilvusStore.open(described)
