"""Dense retrieval: a FAISS inner-product index on disk, exact when small, HNSW when large."""

from __future__ import annotations

from pathlib import Path

import faiss
import numpy as np

from medsearch.encoders import Encoder
from medsearch.records import Hit
from medsearch.retrieval import ChunkTable

HNSW_THRESHOLD = 50_000


class VectorIndex:
    """Normalised vectors under inner product (= cosine)."""

    def __init__(self, index: faiss.Index) -> None:
        self.index = index

    @classmethod
    def build(cls, vectors: np.ndarray, hnsw_threshold: int = HNSW_THRESHOLD) -> VectorIndex:
        vectors = np.ascontiguousarray(vectors, dtype=np.float32)
        dim = vectors.shape[1]
        if len(vectors) >= hnsw_threshold:
            index = faiss.IndexHNSWFlat(dim, 32, faiss.METRIC_INNER_PRODUCT)
            index.hnsw.efConstruction = 80
            index.hnsw.efSearch = 128
        else:
            index = faiss.IndexFlatIP(dim)
        index.add(vectors)
        return cls(index)

    @property
    def kind(self) -> str:
        return "hnsw" if isinstance(self.index, faiss.IndexHNSWFlat) else "flat"

    def save(self, path: Path) -> None:
        faiss.write_index(self.index, str(path))

    @classmethod
    def load(cls, path: Path) -> VectorIndex:
        return cls(faiss.read_index(str(path)))

    def search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        k = min(k, self.index.ntotal)
        scores, rows = self.index.search(np.ascontiguousarray(queries, dtype=np.float32), k)
        return scores, rows


class DenseRetriever:
    """Encodes the query and looks up its nearest chunks."""

    name = "dense"

    def __init__(self, encoder: Encoder, index: VectorIndex, table: ChunkTable) -> None:
        self.encoder, self.index, self.table = encoder, index, table

    def search(self, query: str, k: int = 10) -> list[Hit]:
        return self.search_many([query], k)[0]

    def search_many(self, queries: list[str], k: int = 10) -> list[list[Hit]]:
        """Search several queries with one batched encode."""
        vectors = self.encoder.encode(queries, query=True)
        scores, rows = self.index.search(vectors, k)
        return [self.table.hits(r, s, self.name) for r, s in zip(rows, scores)]
