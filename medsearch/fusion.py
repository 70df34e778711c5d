"""Hybrid retrieval: reciprocal rank fusion and weighted score fusion of several retrievers."""

from __future__ import annotations

from collections.abc import Mapping
from functools import partial

from medsearch.filters import Filter
from medsearch.records import Hit
from medsearch.retrieval import Retriever, search_many, side_by_side

FUSION_METHODS = ("rrf", "weighted")


def rrf(results: Mapping[str, list[Hit]], weights: Mapping[str, float], k: int = 60) -> list[Hit]:
    """Weighted reciprocal rank fusion: score = Σ w / (k + rank)."""
    return _fuse(results, weights, lambda hits: {h.chunk_id: 1.0 / (k + h.rank) for h in hits})


def weighted(results: Mapping[str, list[Hit]], weights: Mapping[str, float]) -> list[Hit]:
    """Weighted sum of min-max normalised scores (a list's worst hit maps to 0, its best to 1)."""

    def normalise(hits: list[Hit]) -> dict[str, float]:
        if not hits:
            return {}
        low, high = min(h.score for h in hits), max(h.score for h in hits)
        return {h.chunk_id: (h.score - low) / (high - low) if high > low else 1.0 for h in hits}

    return _fuse(results, weights, normalise)


def _fuse(results, weights, contribution) -> list[Hit]:
    scores: dict[str, float] = {}
    docs: dict[str, str] = {}
    for name, hits in results.items():
        for chunk_id, value in contribution(hits).items():
            scores[chunk_id] = scores.get(chunk_id, 0.0) + weights.get(name, 1.0) * value
        docs.update((h.chunk_id, h.doc_id) for h in hits)
    ranked = sorted(scores.items(), key=lambda item: -item[1])
    return [Hit(cid, docs[cid], score, rank, "hybrid") for rank, (cid, score) in enumerate(ranked, 1) if score > 0]


class HybridRetriever:
    """Fuses the top `depth` hits of each retriever with RRF or weighted score fusion."""

    name = "hybrid"

    def __init__(self, retrievers: Mapping[str, Retriever], weights: Mapping[str, float],
                 method: str = "rrf", depth: int = 100) -> None:
        self.retrievers, self.weights, self.method, self.depth = dict(retrievers), dict(weights), method, depth

    def search(self, query: str, k: int = 10, where: Filter | None = None) -> list[Hit]:
        return self.search_many([query], k, where)[0]

    def search_many(self, queries: list[str], k: int = 10, where: Filter | None = None) -> list[list[Hit]]:
        """Each retriever answers all queries (batched where it can), then each query is fused."""
        depth = max(k, self.depth)
        results = side_by_side({name: partial(search_many, r, queries, depth, where) for name, r in self.retrievers.items()})
        fuse = rrf if self.method == "rrf" else weighted
        return [fuse({name: hits[i] for name, hits in results.items()}, self.weights)[:k] for i in range(len(queries))]
