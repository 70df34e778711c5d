"""Searching one build of a collection: its retrievers, each loaded once and shared by every session."""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, TypeVar

from medsearch.corpusdb import ChunkTable
from medsearch.dense import DenseRetriever
from medsearch.encoders import load_encoder
from medsearch.fusion import HybridRetriever
from medsearch.pipeline import DEPTH, AutoRetriever, Pipeline, no_dense
from medsearch.records import Chunk, MedSearchError
from medsearch.rerank import RerankedRetriever, Reranker
from medsearch.retrieval import Retriever
from medsearch.sparse import BM25Retriever, TfidfRetriever
from medsearch.text import Tokenizer
from medsearch.vectors import open_store

T = TypeVar("T")
RETRIEVERS = ("auto", "bm25", "tfidf", "dense", "hybrid")
COLBERT = "colbert"  # late interaction over every chunk: a Collection's, with a ColBERT model (`medsearch.colbert`)


class Retrievers:
    """The retrievers of one build (`manifest`), loaded on first use: bm25 and tfidf from the sparse folders,
    dense per model, hybrid and auto composed from those, so they share one loaded vector index per model.
    `loaded` wraps every read of the folder (it raises when another build replaced this one meanwhile)."""

    def __init__(self, folder: Path, manifest: dict, table: ChunkTable, tokenizer: Tokenizer,
                 loaded: Callable[[Callable[[], Any]], Any]) -> None:
        self.folder, self.manifest, self.table, self.tokenizer, self._loaded = folder, manifest, table, tokenizer, loaded
        self._made: dict[tuple[str, str], Retriever] = {}
        self._reranked: dict[tuple[int, str, int], RerankedRetriever] = {}
        self._making = threading.RLock()  # sessions share a build: each retriever loads once

    def get(self, kind: str, model: str | None) -> Retriever:
        """The retriever of that kind for a model spec (canonical; None: no dense model)."""
        if kind not in RETRIEVERS:
            raise MedSearchError(f"Unknown retriever '{kind}': choose one of {', '.join(RETRIEVERS)}.")
        key = (kind, "" if kind in ("bm25", "tfidf") else model or "")  # sparse ones serve every model
        with self._making:
            if key not in self._made:
                self._made[key] = self._loaded(lambda: self._make(kind, model))
            return self._made[key]

    def reranked(self, first: Retriever, reranker: Reranker, k_first: int,
                 chunks: Mapping[str, Chunk]) -> RerankedRetriever:
        """A first stage (one of this build's, loaded once) with its top `k_first` hits reordered by a reranker."""
        key = (id(first), reranker.spec, k_first)
        with self._making:
            if key not in self._reranked:
                self._reranked[key] = RerankedRetriever(first, reranker, chunks, k_first)
            return self._reranked[key]

    def pipeline(self, model: str | None) -> Pipeline:
        """The `auto` pipeline chosen at build time for a model (BM25 alone without one)."""
        if not model or model not in self.manifest["dense"]:
            return no_dense()
        return Pipeline.from_dict(self.manifest["dense"][model]["auto"])

    def _make(self, kind: str, model: str | None) -> Retriever:
        sparse = self.manifest["sparse"]
        if kind == "bm25":
            return BM25Retriever.load(self.folder / sparse["bm25"]["folder"], self.table, self.tokenizer)
        if kind == "tfidf":
            return TfidfRetriever.load(self.folder / sparse["tfidf"]["folder"], self.table, self.tokenizer)
        bm25 = self.get("bm25", None)
        if kind == "auto" and model is None:
            return AutoRetriever(no_dense(), bm25, None)
        if kind == "dense":
            return self._dense(model)
        dense = self.dense(model)  # one copy of the vector index, however many kinds use it
        if kind == "hybrid":
            return HybridRetriever({"bm25": bm25, "dense": dense}, {"bm25": 1.0, "dense": 1.0}, "rrf", DEPTH)
        return AutoRetriever(self.pipeline(model), bm25, dense, dense.encoder.languages)

    def dense(self, model: str | None) -> DenseRetriever:
        """The dense retriever of a model, as `get("dense", model)`, typed as such."""
        found = self.get("dense", model)
        assert isinstance(found, DenseRetriever)
        return found

    def _dense(self, model: str | None) -> DenseRetriever:
        if not model or model not in self.manifest["dense"]:
            have = ", ".join(self.manifest["dense"]) or "none"
            raise MedSearchError(f"Collection '{self.manifest['name']}' has no dense index for '{model}' (has: {have}).")
        info = self.manifest["dense"][model]
        store = open_store(self.folder / "dense" / info["folder"], info["store"], self.table.matching)
        return DenseRetriever(load_encoder(model, self.folder.parent), store, self.table)
