"""Sparse retrieval: BM25 on bm25s and a TF-IDF variant on scikit-learn, both on our tokenizer."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import bm25s
import numpy as np
import scipy.sparse as sp
from sklearn.feature_extraction.text import TfidfTransformer, TfidfVectorizer

from medsearch.filters import Filter
from medsearch.records import Hit
from medsearch.retrieval import Table, top_rows
from medsearch.text import Tokenizer

BM25_METHODS = ("lucene", "robertson", "atire", "bm25l", "bm25+")


class TokenIds:
    """Many chunks' tokens as one int32 array each plus a shared vocabulary: about a tenth of the memory of
    lists of strings, so both sparse indexes of a million chunks build in a few GB."""

    def __init__(self) -> None:
        self.vocab: dict[str, int] = {}
        self.docs: list[np.ndarray] = []

    def add(self, tokens: Sequence[str]) -> None:
        vocab = self.vocab
        self.docs.append(np.fromiter((vocab.setdefault(t, len(vocab)) for t in tokens), dtype=np.int32))

    @classmethod
    def of(cls, tokens: Sequence[Sequence[str]]) -> TokenIds:
        corpus = cls()
        for doc in tokens:
            corpus.add(doc)
        return corpus

    def counts(self) -> sp.csr_matrix:
        """Term counts, chunks × vocabulary."""
        lengths = np.fromiter((len(d) for d in self.docs), dtype=np.int64, count=len(self.docs))
        indptr = np.concatenate([[0], np.cumsum(lengths)])
        columns = np.concatenate(self.docs) if self.docs else np.empty(0, np.int32)
        matrix = sp.csr_matrix((np.ones(len(columns), np.float32), columns, indptr),
                               shape=(len(self.docs), len(self.vocab)))
        matrix.sum_duplicates()
        return matrix


class BM25Retriever:
    """Okapi BM25 (Lucene variant by default) over pre-tokenized chunks, backed by bm25s."""

    name = "bm25"

    def __init__(self, index: bm25s.BM25, table: Table, tokenizer: Tokenizer, rows: np.ndarray | None = None) -> None:
        self.index, self.table, self.tokenizer = index, table, tokenizer
        self.rows = np.arange(len(table), dtype=np.int64) if rows is None else rows  # index position → table row

    @classmethod
    def build(cls, tokens: Sequence[list[str]] | TokenIds, table: Table, tokenizer: Tokenizer,
              method: str = "lucene", k1: float = 1.5, b: float = 0.75, rows: np.ndarray | None = None) -> BM25Retriever:
        corpus = tokens if isinstance(tokens, TokenIds) else TokenIds.of(tokens)
        index = bm25s.BM25(method=method, k1=k1, b=b)
        index.index((corpus.docs, dict(corpus.vocab)), show_progress=False)
        return cls(index, table, tokenizer, rows)

    def save(self, folder: Path) -> None:
        self.index.save(str(folder), show_progress=False)
        np.save(folder / "rows.npy", self.rows)

    @classmethod
    def load(cls, folder: Path, table: Table, tokenizer: Tokenizer) -> BM25Retriever:
        return cls(bm25s.BM25.load(str(folder), mmap=False, show_progress=False), table, tokenizer, _rows(folder))

    def scores(self, tokens: list[str]) -> np.ndarray:
        """BM25 score of every chunk for a tokenized query."""
        known = [t for t in tokens if t in self.index.vocab_dict]
        if not known:
            return np.zeros(len(self.rows), dtype=np.float32)
        return self.index.get_scores(known)

    def search(self, query: str, k: int = 10, where: Filter | None = None) -> list[Hit]:
        return _hits(self, self.scores(self.tokenizer(query)), k, where)


def _rows(folder: Path) -> np.ndarray | None:
    path = folder / "rows.npy"
    return np.load(path) if path.exists() else None


def _hits(retriever, scores: np.ndarray, k: int, where: Filter | None) -> list[Hit]:
    """The top-k positions as hits; with a filter, positions whose chunk does not match score nothing."""
    if where is not None:
        scores = np.where(np.isin(retriever.rows, retriever.table.matching(where)), scores, 0)
    positions, top = top_rows(scores, k)
    return retriever.table.hits(retriever.rows[positions], top, retriever.name)


def _identity(tokens: list[str]) -> list[str]:
    return tokens


def _vectorizer() -> TfidfVectorizer:
    return TfidfVectorizer(analyzer=_identity, sublinear_tf=True, norm="l2")


class TfidfRetriever:
    """Cosine similarity of sublinear TF-IDF vectors (scikit-learn) on the same tokens as BM25."""

    name = "tfidf"

    def __init__(self, vectorizer: TfidfVectorizer, matrix: sp.csr_matrix, table: Table,
                 tokenizer: Tokenizer, rows: np.ndarray | None = None) -> None:
        self.vectorizer, self.matrix, self.table, self.tokenizer = vectorizer, matrix, table, tokenizer
        self.rows = np.arange(matrix.shape[0], dtype=np.int64) if rows is None else rows

    @classmethod
    def build(cls, tokens: Sequence[list[str]] | TokenIds, table: Table, tokenizer: Tokenizer,
              rows: np.ndarray | None = None) -> TfidfRetriever:
        """What TfidfVectorizer.fit_transform gives (CountVectorizer + TfidfTransformer), from token ids."""
        corpus = tokens if isinstance(tokens, TokenIds) else TokenIds.of(tokens)
        transformer = TfidfTransformer(sublinear_tf=True, norm="l2")
        matrix = transformer.fit_transform(corpus.counts()).tocsr()
        vectorizer = _vectorizer()
        vectorizer.vocabulary_, vectorizer.idf_ = dict(corpus.vocab), transformer.idf_
        return cls(vectorizer, matrix, table, tokenizer, rows)

    def save(self, folder: Path) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        sp.save_npz(folder / "matrix.npz", self.matrix)
        np.save(folder / "idf.npy", self.vectorizer.idf_)
        vocab = {term: int(i) for term, i in self.vectorizer.vocabulary_.items()}
        (folder / "vocab.json").write_text(json.dumps(vocab, ensure_ascii=False), encoding="utf-8")
        np.save(folder / "rows.npy", self.rows)

    @classmethod
    def load(cls, folder: Path, table: Table, tokenizer: Tokenizer) -> TfidfRetriever:
        vectorizer = _vectorizer()
        vectorizer.vocabulary_ = json.loads((folder / "vocab.json").read_text(encoding="utf-8"))
        vectorizer.idf_ = np.load(folder / "idf.npy")
        return cls(vectorizer, sp.load_npz(folder / "matrix.npz").tocsr(), table, tokenizer, _rows(folder))

    def search(self, query: str, k: int = 10, where: Filter | None = None) -> list[Hit]:
        qvec = self.vectorizer.transform([self.tokenizer(query)])
        return _hits(self, np.asarray((self.matrix @ qvec.T).todense()).ravel(), k, where)
