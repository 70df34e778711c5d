"""Sparse retrieval: BM25 on bm25s and a TF-IDF variant on scikit-learn, both on our tokenizer."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import bm25s
import numpy as np
import scipy.sparse as sp
from sklearn.feature_extraction.text import TfidfVectorizer

from medsearch.records import Hit
from medsearch.retrieval import ChunkTable, top_rows
from medsearch.text import Tokenizer

BM25_METHODS = ("lucene", "robertson", "atire", "bm25l", "bm25+")


class BM25Retriever:
    """Okapi BM25 (Lucene variant by default) over pre-tokenized chunks, backed by bm25s."""

    name = "bm25"

    def __init__(self, index: bm25s.BM25, table: ChunkTable, tokenizer: Tokenizer) -> None:
        self.index, self.table, self.tokenizer = index, table, tokenizer

    @classmethod
    def build(cls, tokens: Sequence[list[str]], table: ChunkTable, tokenizer: Tokenizer,
              method: str = "lucene", k1: float = 1.5, b: float = 0.75) -> BM25Retriever:
        index = bm25s.BM25(method=method, k1=k1, b=b)
        index.index([list(t) for t in tokens], show_progress=False)
        return cls(index, table, tokenizer)

    def save(self, folder: Path) -> None:
        self.index.save(str(folder), show_progress=False)

    @classmethod
    def load(cls, folder: Path, table: ChunkTable, tokenizer: Tokenizer) -> BM25Retriever:
        return cls(bm25s.BM25.load(str(folder), mmap=False, show_progress=False), table, tokenizer)

    def scores(self, tokens: list[str]) -> np.ndarray:
        """BM25 score of every chunk for a tokenized query."""
        known = [t for t in tokens if t in self.index.vocab_dict]
        if not known:
            return np.zeros(len(self.table), dtype=np.float32)
        return self.index.get_scores(known)

    def search(self, query: str, k: int = 10) -> list[Hit]:
        rows, scores = top_rows(self.scores(self.tokenizer(query)), k)
        return self.table.hits(rows, scores, self.name)


def _identity(tokens: list[str]) -> list[str]:
    return tokens


def _vectorizer() -> TfidfVectorizer:
    return TfidfVectorizer(analyzer=_identity, sublinear_tf=True, norm="l2")


class TfidfRetriever:
    """Cosine similarity of sublinear TF-IDF vectors (scikit-learn) on the same tokens as BM25."""

    name = "tfidf"

    def __init__(self, vectorizer: TfidfVectorizer, matrix: sp.csr_matrix, table: ChunkTable,
                 tokenizer: Tokenizer) -> None:
        self.vectorizer, self.matrix, self.table, self.tokenizer = vectorizer, matrix, table, tokenizer

    @classmethod
    def build(cls, tokens: Sequence[list[str]], table: ChunkTable, tokenizer: Tokenizer) -> TfidfRetriever:
        vectorizer = _vectorizer()
        matrix = vectorizer.fit_transform(list(tokens)).tocsr()
        return cls(vectorizer, matrix, table, tokenizer)

    def save(self, folder: Path) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        sp.save_npz(folder / "matrix.npz", self.matrix)
        np.save(folder / "idf.npy", self.vectorizer.idf_)
        vocab = {term: int(i) for term, i in self.vectorizer.vocabulary_.items()}
        (folder / "vocab.json").write_text(json.dumps(vocab, ensure_ascii=False), encoding="utf-8")

    @classmethod
    def load(cls, folder: Path, table: ChunkTable, tokenizer: Tokenizer) -> TfidfRetriever:
        vectorizer = _vectorizer()
        vectorizer.vocabulary_ = json.loads((folder / "vocab.json").read_text(encoding="utf-8"))
        vectorizer.idf_ = np.load(folder / "idf.npy")
        return cls(vectorizer, sp.load_npz(folder / "matrix.npz").tocsr(), table, tokenizer)

    def search(self, query: str, k: int = 10) -> list[Hit]:
        qvec = self.vectorizer.transform([self.tokenizer(query)])
        scores = np.asarray((self.matrix @ qvec.T).todense()).ravel()
        rows, top = top_rows(scores, k)
        return self.table.hits(rows, top, self.name)
