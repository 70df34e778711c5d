"""Ranking metrics from ranx (nDCG, MRR, Recall, MAP), on plain dicts; safe from many threads at once.

ranx computes metrics in numba `parallel=True` functions and, on import, sets numba's threading
layer to "workqueue", which aborts the whole process (SIGABRT) when two Python threads enter a
parallel function at once, as two Streamlit sessions computing metrics do. Every ranx call here
therefore holds one process-wide lock. The other way, numba's thread-safe OpenMP layer, was
measured against it (`bench/metrics_threads.md`, 8 threads at once on 2 cores): the two differ by
about the noise between runs. The lock was kept: code that ran numba's workqueue layer first cannot
undo it, and it needs no OpenMP runtime. ranx is used nowhere else in MedSearch.
"""

from __future__ import annotations

import threading
import warnings
from collections.abc import Mapping

from medsearch.records import Hit

METRICS = ("ndcg@10", "mrr@10", "recall@10", "recall@100", "map@100")
Qrels = Mapping[str, Mapping[str, int]]
Run = Mapping[str, Mapping[str, float]]
_RANX = threading.Lock()


def run_from_hits(results: Mapping[str, list[Hit]]) -> dict[str, dict[str, float]]:
    """A ranx-style run {query id: {doc id: score}} from document-level hits (rank decides order)."""
    return {qid: {h.doc_id: float(len(hits) - h.rank + 1) for h in hits} for qid, hits in results.items()}


def evaluate_run(qrels: Qrels, run: Run, metrics: tuple[str, ...] = METRICS) -> dict[str, float]:
    """Mean metrics over the queries of `qrels` (a query with no hits scores 0)."""
    return {m: round(sum(values.values()) / max(len(values), 1), 4) for m, values in _per_query(qrels, run, metrics).items()}


def query_scores(qrels: Qrels, run: Run, metric: str = "ndcg@10") -> dict[str, float]:
    """One metric per judged query of `qrels`: {query id: value}."""
    return _per_query(qrels, run, (metric,))[metric]


def _per_query(qrels: Qrels, run: Run, metrics: tuple[str, ...]) -> dict[str, dict[str, float]]:
    import ranx

    judged = {q: {d: int(r) for d, r in docs.items()} for q, docs in qrels.items() if any(r > 0 for r in docs.values())}
    full_run = {q: dict(run.get(q) or {}) or {"__none__": 0.0} for q in judged}
    with _RANX, warnings.catch_warnings():  # one ranx call at a time (see the module docstring)
        warnings.simplefilter("ignore")
        rq, rr = ranx.Qrels(judged), ranx.Run(full_run)
        scores = ranx.evaluate(rq, rr, list(metrics), make_comparable=True, return_mean=False)
    if len(metrics) == 1:
        scores = {metrics[0]: scores}
    queries = list(rq.keys())
    return {m: dict(zip(queries, map(float, scores[m]))) for m in metrics}
