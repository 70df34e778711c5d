"""Side-by-side comparison of retrievers on one query or on a whole judged query set."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from medsearch.collection import Collection
from medsearch.metrics import evaluate_run, run_from_hits
from medsearch.records import Hit
from medsearch.limits import checked_query

DEPTH = 100
SHOWN_METRICS = ("ndcg@10", "mrr@10", "recall@10")


@dataclass
class Entry:
    """One document in one retriever's list, with where the other retrievers put it (None: not in their top DEPTH)."""

    hit: Hit
    others: dict[str, int | None]
    in_all: bool
    grade: int = 0


@dataclass
class Comparison:
    """The top-k documents of each retriever for one query, cross-referenced."""

    query: str
    k: int
    columns: dict[str, list[Entry]]
    found: dict[str, list[Hit]]
    metrics: dict[str, dict[str, float]] = field(default_factory=dict)

    def judge(self, relevant: Mapping[str, int]) -> Comparison:
        """Mark the relevant documents and compute each list's metrics (none without a relevant document)."""
        for entries in self.columns.values():
            for entry in entries:
                entry.grade = relevant.get(entry.hit.doc_id, 0)
        judged = {d: g for d, g in relevant.items() if g > 0}
        self.metrics = {name: evaluate_run({"q": judged}, run_from_hits({"q": hits}), SHOWN_METRICS)
                        for name, hits in self.found.items()} if judged else {}
        return self

    def overlap(self) -> dict[str, int]:
        """How many top-k documents all lists share, and how many each list has alone."""
        tops = {name: {e.hit.doc_id for e in entries} for name, entries in self.columns.items()}
        shared = set.intersection(*tops.values()) if tops else set()
        alone = {name: len(docs - set().union(*(d for n, d in tops.items() if n != name))) for name, docs in tops.items()}
        return {"shared": len(shared), **{f"only {name}": n for name, n in alone.items()}}


def judged(collection: Collection, query: str) -> dict[str, int]:
    """The collection's relevance grades for this exact query text ({} when it is not a judged query)."""
    eval_set = collection.eval_set
    if eval_set is None:
        return {}
    for qid, text in eval_set.queries.items():
        if text.strip() == query.strip():
            for qrels in eval_set.qrels.values():
                if qid in qrels:
                    return dict(qrels[qid])
    return {}


def compare(collection: Collection, query: str, retrievers: Sequence[str] = ("bm25", "dense"), k: int = 10,
            model: str | None = None) -> Comparison:
    """Each retriever's top-k documents and where the others ranked them (judged with the collection's qrels)."""
    found = dict(zip(retrievers, (collection.search_documents([checked_query(query)], DEPTH, kind, model)[0]
                                         for kind in retrievers)))
    ranks = {name: {h.doc_id: h.rank for h in hits} for name, hits in found.items()}
    columns = {name: [Entry(h, {o: ranks[o].get(h.doc_id) for o in found if o != name},
                            all(ranks[o].get(h.doc_id, k + 1) <= k for o in found)) for h in hits[:k]]
               for name, hits in found.items()}
    return Comparison(query, k, columns, found).judge(judged(collection, query))


def per_query(collection: Collection, retrievers: Sequence[str] = ("bm25", "dense"), model: str | None = None,
              metric: str = "ndcg@10") -> list[dict]:
    """`metric` of each retriever on every judged query of the collection: [{qid, query, <retriever>: value}]."""
    eval_set = collection.eval_set
    if eval_set is None:
        return []
    qrels = {q: grades for split in eval_set.qrels.values() for q, grades in split.items() if q in eval_set.queries}
    ids = sorted(qrels)
    texts = [eval_set.queries[q] for q in ids]
    scores = {}
    for kind in retrievers:
        hits = collection.search_documents(texts, DEPTH, kind, model)
        scores[kind] = evaluate_run(qrels, run_from_hits(dict(zip(ids, hits))), (metric,), per_query=True)[metric]
    return [{"qid": q, "query": eval_set.queries[q], **{kind: scores[kind].get(q, 0.0) for kind in retrievers}}
            for q in ids]
