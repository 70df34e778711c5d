"""Sparse retrieval: BM25 on bm25s and a TF-IDF variant on scikit-learn, both on our tokenizer."""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING

import bm25s
import numpy as np
import scipy.sparse as sp
from bm25s.scoring import _select_idf_scorer, _select_tfc_scorer

from medsearch.filters import Filter
from medsearch.records import Hit
from medsearch.retrieval import Table, index_hits
from medsearch.text import Tokenizer

if TYPE_CHECKING:  # scikit-learn takes a second to import: only TF-IDF needs it, and loads it when used
    from sklearn.feature_extraction.text import TfidfVectorizer

BM25_METHODS = ("lucene", "robertson", "atire", "bm25l", "bm25+")


class TermCounts:
    """How often each term occurs in each chunk (CSR, chunks × terms), with the chunks' rows and the terms.
    Both sparse indexes are computed from it; it is saved with them, so a change counts only its new chunks
    instead of re-reading the tokens of every chunk."""

    def __init__(self, matrix: sp.csr_matrix, rows: np.ndarray, terms: list[str]) -> None:
        self.matrix, self.rows, self.terms = matrix, rows, terms

    @cached_property
    def vocab(self) -> dict[str, int]:
        return {term: i for i, term in enumerate(self.terms)}

    @classmethod
    def of(cls, chunks: Iterable[tuple[int, Sequence[str]]], terms: Sequence[str] = ()) -> TermCounts:
        """Counts of (row, tokens) pairs; new terms are numbered after `terms`."""
        vocab, rows, docs = {t: i for i, t in enumerate(terms)}, [], []
        for row, tokens in chunks:
            rows.append(row)
            docs.append(np.fromiter((vocab.setdefault(t, len(vocab)) for t in tokens), dtype=np.int32))
        lengths = np.fromiter((len(d) for d in docs), dtype=np.int64, count=len(docs))
        indptr = np.concatenate([[0], np.cumsum(lengths)])
        columns = np.concatenate(docs) if docs else np.empty(0, np.int32)
        matrix = sp.csr_matrix((np.ones(len(columns), np.float32), columns, indptr), shape=(len(docs), len(vocab)))
        matrix.sum_duplicates()
        return cls(matrix, np.asarray(rows, dtype=np.int64), list(vocab))

    def changed(self, retired: np.ndarray, added: Iterable[tuple[int, Sequence[str]]]) -> TermCounts:
        """These counts without the `retired` rows and with the `added` chunks (rows after all of ours)."""
        new, keep = TermCounts.of(added, self.terms), ~np.isin(self.rows, retired)
        kept = self.matrix[keep]
        kept.resize((kept.shape[0], len(new.terms)))
        matrix = sp.vstack([kept, new.matrix], format="csr")
        rows = np.concatenate([self.rows[keep], new.rows])
        return TermCounts(matrix, rows, new.terms).used()

    def used(self) -> TermCounts:
        """Without the terms no chunk has any more, as counting the remaining chunks afresh would give."""
        used = np.bincount(self.matrix.indices, minlength=len(self.terms)) > 0
        if used.all():
            return self
        number = np.cumsum(used) - 1
        matrix = sp.csr_matrix((self.matrix.data, number[self.matrix.indices].astype(np.int32), self.matrix.indptr),
                               shape=(self.matrix.shape[0], int(used.sum())))
        return TermCounts(matrix, self.rows, [t for t, keep in zip(self.terms, used) if keep])

    def save(self, folder: Path) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        sp.save_npz(folder / "counts.npz", self.matrix, compressed=False)
        np.save(folder / "rows.npy", self.rows)
        (folder / "terms.json").write_text(json.dumps(self.terms, ensure_ascii=False), encoding="utf-8")

    @classmethod
    def load(cls, folder: Path) -> TermCounts:
        return cls(sp.load_npz(folder / "counts.npz").tocsr(), np.load(folder / "rows.npy"),
                   json.loads((folder / "terms.json").read_text(encoding="utf-8")))


def _counts(tokens: Sequence[Sequence[str]] | TermCounts) -> TermCounts:
    return tokens if isinstance(tokens, TermCounts) else TermCounts.of(enumerate(tokens))


def _bm25_index(counts: TermCounts, method: str, k1: float, b: float) -> bm25s.BM25:
    """A bm25s index with the scores `BM25.index` computes, from term counts in a few numpy operations:
    bm25s's own build loops over the chunks in Python (a minute per million chunks). Its idf and tf
    formulas are used as they are."""
    index = bm25s.BM25(method=method, k1=k1, b=b)
    counts_matrix, dtype = counts.matrix, np.dtype(index.dtype)
    n_docs, n_terms = counts_matrix.shape
    lengths = np.asarray(counts_matrix.sum(axis=1), dtype=np.float64).ravel()
    average = float(lengths.mean()) if n_docs else 0.0
    frequency = np.bincount(counts_matrix.indices, minlength=n_terms)
    idf_of = _select_idf_scorer(index.idf_method)
    idf = np.array([idf_of(int(df), N=n_docs) if df else 0.0 for df in frequency], dtype=dtype)
    tfc = _select_tfc_scorer(index.method)
    per_entry = dict(l_avg=average, k1=index.k1, b=index.b, delta=index.delta)
    scores = idf[counts_matrix.indices] * tfc(tf_array=counts_matrix.data,
                                              l_d=np.repeat(lengths, np.diff(counts_matrix.indptr)), **per_entry)
    index.nonoccurrence_array = None
    if index.method in index.methods_requiring_nonoccurrence:
        index.nonoccurrence_array = (idf * tfc(tf_array=0, l_d=average, **per_entry)).astype(dtype)
        scores = scores - index.nonoccurrence_array[counts_matrix.indices]
    by_term = sp.csr_matrix((scores.astype(dtype), counts_matrix.indices, counts_matrix.indptr),
                            shape=(n_docs, n_terms)).tocsc()
    index.scores = {"data": by_term.data.astype(dtype), "indices": by_term.indices.astype(index.int_dtype),
                    "indptr": by_term.indptr, "num_docs": n_docs}
    index.vocab_dict = counts.vocab | {"": n_terms}
    index.unique_token_ids_set = set(index.vocab_dict.values())
    return index


class BM25Retriever:
    """Okapi BM25 (Lucene variant by default) over pre-tokenized chunks, backed by bm25s."""

    name = "bm25"

    def __init__(self, index: bm25s.BM25, table: Table, tokenizer: Tokenizer, rows: np.ndarray | None = None) -> None:
        self.index, self.table, self.tokenizer = index, table, tokenizer
        self.rows = np.arange(len(table), dtype=np.int64) if rows is None else rows  # index position → table row

    @classmethod
    def build(cls, tokens: Sequence[Sequence[str]] | TermCounts, table: Table, tokenizer: Tokenizer,
              method: str = "lucene", k1: float = 1.5, b: float = 0.75, rows: np.ndarray | None = None) -> BM25Retriever:
        return cls(_bm25_index(_counts(tokens), method, k1, b), table, tokenizer, rows)

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
        return index_hits(self, self.scores(self.tokenizer(query)), k, where)


def _rows(folder: Path) -> np.ndarray | None:
    path = folder / "rows.npy"
    return np.load(path) if path.exists() else None


def _identity(tokens: list[str]) -> list[str]:
    return tokens


def _vectorizer() -> TfidfVectorizer:
    from sklearn.feature_extraction.text import TfidfVectorizer

    return TfidfVectorizer(analyzer=_identity, sublinear_tf=True, norm="l2")


class TfidfRetriever:
    """Cosine similarity of sublinear TF-IDF vectors (scikit-learn) on the same tokens as BM25."""

    name = "tfidf"

    def __init__(self, vectorizer: TfidfVectorizer, matrix: sp.csr_matrix, table: Table,
                 tokenizer: Tokenizer, rows: np.ndarray | None = None) -> None:
        self.vectorizer, self.matrix, self.table, self.tokenizer = vectorizer, matrix, table, tokenizer
        self.rows = np.arange(matrix.shape[0], dtype=np.int64) if rows is None else rows

    @classmethod
    def build(cls, tokens: Sequence[Sequence[str]] | TermCounts, table: Table, tokenizer: Tokenizer,
              rows: np.ndarray | None = None) -> TfidfRetriever:
        """What TfidfVectorizer.fit_transform gives (CountVectorizer + TfidfTransformer), from term counts."""
        from sklearn.feature_extraction.text import TfidfTransformer

        counts = _counts(tokens)
        transformer = TfidfTransformer(sublinear_tf=True, norm="l2")
        matrix = transformer.fit_transform(counts.matrix).tocsr()
        vectorizer = _vectorizer()
        vectorizer.vocabulary_, vectorizer.idf_ = counts.vocab, transformer.idf_
        return cls(vectorizer, matrix, table, tokenizer, rows)

    def save(self, folder: Path) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        sp.save_npz(folder / "matrix.npz", self.matrix, compressed=False)
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
        return index_hits(self, np.asarray((self.matrix @ qvec.T).todense()).ravel(), k, where)
