"""The `auto` pipeline: which retrievers to combine, with what weights, and why.

Evidence, strongest first:
1. dev qrels stored with the collection: every candidate (BM25, dense, RRF and weighted fusion at
   several dense weights) is scored on them and the best nDCG@10 wins (a near-tie goes to the
   higher Recall@100, then to the simpler candidate);
2. otherwise the dense model's language coverage: the share of chunks written in a language
   the model reads. A model that cannot read the corpus is left out (BM25 alone); one that reads
   all of it is fused with BM25, leaning on the dense side.
At query time a query in a language the model does not read goes to BM25 alone.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field
from functools import partial

from medsearch.filters import Filter
from medsearch.fusion import rrf, weighted
from medsearch.i18n import REASONS
from medsearch.records import Hit
from medsearch.retrieval import Retriever, search_many, side_by_side
from medsearch.text import detect_lang

DEPTH = 100
TIE = 0.002  # dev nDCG@10 differences below this count as a tie
CANDIDATES = [("bm25", 0.0), ("dense", 1.0)] + [(m, w) for m in ("rrf", "weighted") for w in (0.3, 0.5, 0.7)]


@dataclass
class Pipeline:
    """How `auto` answers: `method` is bm25, dense, rrf or weighted; `dense_weight` in [0, 1]; `reason` the code
    of why (tuned, coverage, coverage_low, no_dense, query_lang), rendered with the numbers in `evidence`."""

    method: str = "bm25"
    dense_weight: float = 0.0
    reason: str = ""
    evidence: dict = field(default_factory=dict)

    def label(self, lang: str = "en") -> str:
        """The method in a few words ("RRF fusion, dense weight 0.7")."""
        return REASONS(self.method, lang, w=self.dense_weight)

    def explain(self, lang: str = "en") -> str:
        """Why this pipeline was chosen, rendered from its evidence (a build from before reasons were codes kept
        the English sentence in `reason`)."""
        ev = self.evidence
        if "query_lang" in ev:
            return REASONS("query_lang", lang, query_lang=ev["query_lang"])
        if "dev_queries" in ev:
            ndcg = ev["ndcg@10"][f"{self.method}:{self.dense_weight}"]
            return REASONS("tuned", lang, ndcg=ndcg, n=len(ev["ndcg@10"]), q=ev["dev_queries"], model=ev["model"])
        if "coverage" in ev and "ndcg@10" not in ev:
            return REASONS("coverage_low" if self.method == "bm25" else "coverage", lang, share=ev["coverage"])
        if self.reason in ("no_dense", REASONS("no_dense", "en")):
            return REASONS("no_dense", lang)
        return self.reason

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping) -> Pipeline:
        return cls(**data)

    def fuse(self, results: Mapping[str, list[Hit]]) -> list[Hit]:
        """Combine per-retriever hits ({'bm25': …, 'dense': …}) as this pipeline says."""
        if self.method in ("bm25", "dense"):
            return list(results.get(self.method, []))
        weights = {"bm25": 1 - self.dense_weight, "dense": self.dense_weight}
        return rrf(results, weights) if self.method == "rrf" else weighted(results, weights)


def no_dense() -> Pipeline:
    """BM25 alone, because the collection has no dense index."""
    return Pipeline("bm25", 0.0, "no_dense")


def from_coverage(coverage: float) -> Pipeline:
    """Choose without labels, from the share of chunks in a language the model reads.

    Queries the model cannot read are routed to BM25 at search time, so the model is kept
    unless it reads almost none of the corpus.
    """
    chosen = Pipeline("bm25", 0.0) if coverage < 0.2 else Pipeline("rrf", 0.7)
    chosen.evidence = {"coverage": coverage}
    chosen.reason = "coverage_low" if chosen.method == "bm25" else "coverage"
    return chosen


def tune(score: Callable[[Pipeline], dict[str, float]], model: str, n_queries: int) -> Pipeline:
    """Choose the candidate with the best dev nDCG@10.

    Candidates within TIE of the best are a tie on a dev set of this size; the tie goes to the
    higher dev Recall@100 (the list that keeps more relevant documents), then to the simpler one.
    """
    scores = {f"{m}:{w}": score(Pipeline(m, w)) for m, w in CANDIDATES}
    best = max(s["ndcg@10"] for s in scores.values())
    tied = [key for key, s in scores.items() if s["ndcg@10"] >= best - TIE]
    best_key = max(tied, key=lambda key: (round(scores[key]["recall@100"], 4), -tied.index(key)))
    method, weight = best_key.split(":")
    chosen = Pipeline(method, float(weight))
    chosen.evidence = {metric: {k: round(s[metric], 4) for k, s in scores.items()} for metric in ("ndcg@10", "recall@100")}
    chosen.evidence |= {"dev_queries": n_queries, "model": model}
    chosen.reason = "tuned"
    return chosen


class AutoRetriever:
    """Runs a `Pipeline` over BM25 and a dense retriever, routing by query language."""

    name = "auto"

    def __init__(self, pipeline: Pipeline, bm25: Retriever, dense: Retriever | None,
                 languages: frozenset[str] = frozenset()) -> None:
        self.pipeline, self.bm25, self.dense, self.languages = pipeline, bm25, dense, languages

    def plan(self, query: str) -> Pipeline:
        """The pipeline this query gets (BM25 alone when the model cannot read the query)."""
        if self.dense is None or self.pipeline.method == "bm25":
            return self.pipeline if self.dense else no_dense()
        lang = detect_lang(query)
        if lang not in self.languages:
            return Pipeline("bm25", 0.0, "query_lang", {"query_lang": lang})
        return self.pipeline

    def search(self, query: str, k: int = 10, where: Filter | None = None) -> list[Hit]:
        return self.search_many([query], k, where)[0]

    def search_many(self, queries: list[str], k: int = 10, where: Filter | None = None) -> list[list[Hit]]:
        """BM25 for every query, the dense model (one batch) for those its plan includes, then fusion."""
        plans = [self.plan(q) for q in queries]
        wanted = [i for i, plan in enumerate(plans) if plan.method != "bm25"]  # none without a dense retriever
        found = side_by_side({"bm25": partial(search_many, self.bm25, queries, DEPTH, where)} | (
            {"dense": partial(search_many, self.dense, [queries[i] for i in wanted], DEPTH, where)}
            if wanted and self.dense else {}))
        results = [{"bm25": hits} for hits in found["bm25"]]
        for i, hits in zip(wanted, found.get("dense", [])):
            results[i]["dense"] = hits
        return [[Hit(h.chunk_id, h.doc_id, h.score, h.rank, self.name) for h in plan.fuse(r)[:k]]
                for plan, r in zip(plans, results)]
