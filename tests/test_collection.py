"""Collections on disk: round trip, validation, atomic rebuilds, retrievers, auto pipeline."""


import json
import shutil
import threading

import pytest

import medsearch.indexing as indexing
from medsearch.collection import BuildOptions, Collection, EvalSet, delete_collection, list_collections, validate_name
from medsearch.encoders import bundled_minilm
from medsearch.fusion import rrf
from medsearch.layout import read_manifest
from medsearch.modelref import ModelRef, finetuned
from medsearch.records import Document, Hit, MedSearchError
from medsearch.retrieval import best_per_document, by_document, side_by_side
from medsearch.sparse import TfidfRetriever

DOCS = [
    Document("htn", "高血压患者应限制食盐摄入，每天不超过5克，并规律服用降压药。", "高血压饮食", "指南", {"department": "cardiology"}),
    Document("preg", "孕妇在医生指导下可以使用头孢类抗生素，这类药物在妊娠期相对安全。", "妊娠期用药", "药典", {"department": "obstetrics"}),
    Document("asthma", "Asthma is a chronic disease of the airways. Inhaled corticosteroids reduce inflammation.",
             "Asthma", "NHS", {"department": "respiratory"}),
    Document("stroke", "Stroke warning signs include face drooping, arm weakness and speech difficulty. Call emergency services at once.",
             "Stroke", "AHA", {"department": "neurology"}),
]


@pytest.fixture
def home(tmp_path, monkeypatch):
    monkeypatch.setenv("MEDSEARCH_HOME", str(tmp_path / "home"))
    return tmp_path / "home"


def test_round_trip_without_dense(home):
    built = Collection.create("demo", DOCS, BuildOptions(chunk_size=60, overlap=10, models=[]))
    again = Collection.open("demo")
    assert again.manifest["counts"] == built.manifest["counts"]
    assert again.manifest["counts"]["documents"] == 4 and again.manifest["counts"]["chunks"] > 4
    assert again.documents["preg"].metadata == {"department": "obstetrics"}
    assert all(c.doc_id in again.documents for c in again.chunks.values())
    assert again.manifest["metadata_columns"] == ["department"]
    assert again.manifest["languages"]["zh"] == pytest.approx(0.5, abs=0.2)
    assert {"created", "versions", "sparse", "dense"} <= set(again.manifest)
    assert again.search("孕妇能吃头孢吗？", 3, "bm25")[0].doc_id == "preg"
    assert again.search("corticosteroid inhaler", 3, "tfidf")[0].doc_id == "asthma"
    assert again.search("孕妇能吃头孢吗？", 3, "auto")[0].doc_id == "preg"  # no dense index: BM25
    assert again.search("stroke", 3, "bm25", filters={"department": "cardiology"}) == []
    assert again.search("stroke", 3, "bm25", filters={"department": "neurology"})[0].doc_id == "stroke"
    with pytest.raises(MedSearchError, match="no dense index"):
        again.search("stroke", 3, "dense")
    with pytest.raises(MedSearchError, match="empty"):
        again.search("  ", 3)


@pytest.mark.parametrize("name", ["../evil", "a/b", "..", "", ".hidden", "x" * 65, "a\\b"])
def test_invalid_names(name):
    with pytest.raises(MedSearchError, match="Invalid collection name"):
        validate_name(name)


def test_chinese_names_are_fine():
    assert validate_name("内科问答-2024") == "内科问答-2024"


def test_failed_rebuild_keeps_previous(home, monkeypatch):
    Collection.create("demo", DOCS, BuildOptions(models=[]))
    before = (home / "demo" / "manifest.json").read_text()

    def boom(*args, **kwargs):
        raise RuntimeError("disk full")

    monkeypatch.setattr(TfidfRetriever, "build", boom)
    with pytest.raises(RuntimeError):
        Collection.create("demo", DOCS[:2], BuildOptions(models=[]))
    assert (home / "demo" / "manifest.json").read_text() == before
    assert Collection.open("demo").search("asthma", 1, "bm25")[0].doc_id == "asthma"
    assert not [p for p in home.iterdir() if p.name.startswith(".tmp-")]  # temporary folder cleaned


def test_killed_swap_is_recovered(home):
    Collection.create("demo", DOCS, BuildOptions(models=[]))
    (home / "demo").rename(home / ".old-demo-12345678")  # killed between the two renames
    assert Collection.open("demo").manifest["counts"]["documents"] == 4


def test_rebuild_add_documents_and_delete(home):
    c = Collection.create("demo", DOCS[:2], BuildOptions(models=[]))
    c = c.add_documents(DOCS[2:])
    assert c.manifest["counts"]["documents"] == 4
    assert c.search("asthma", 1, "bm25")[0].doc_id == "asthma"
    assert [x.name for x in list_collections()] == ["demo"]
    delete_collection("demo")
    assert list_collections() == []
    with pytest.raises(MedSearchError):
        Collection.open("demo")


def test_duplicate_ids_and_empty_documents_are_rejected(home):
    with pytest.raises(MedSearchError, match="Duplicate"):
        Collection.create("demo", [DOCS[0], DOCS[0]], BuildOptions(models=[]))
    with pytest.raises(MedSearchError, match="no text"):
        Collection.create("demo", [Document("e", "   ")], BuildOptions(models=[]))
    assert not (home / "demo").exists()


def test_dense_auto_and_model_reuse(home, monkeypatch):
    c = Collection.create("demo", DOCS, BuildOptions(models=["minilm"]))
    assert c.default_model == "sentence-transformers/all-MiniLM-L6-v2"
    info = c.manifest["dense"][c.default_model]
    assert info["index"] == "flat" and info["dim"] == 384 and info["count"] == 4
    assert c.search("How do I recognise a stroke?", 1, "dense")[0].doc_id == "stroke"
    assert c.search("How do I recognise a stroke?", 1, "hybrid")[0].doc_id == "stroke"
    query = "How do I recognise a stroke?"
    fused = rrf({"bm25": c.search(query, 100, "bm25"), "dense": c.search(query, 100, "dense")}, {"bm25": 1, "dense": 1})
    assert [(h.chunk_id, h.score) for h in c.search(query, 10, "hybrid")] == [(h.chunk_id, h.score) for h in fused[:10]]
    auto = c.retriever("auto")
    # dense, hybrid and auto share one loaded vector index (at 1M chunks an HNSW index is ~2 GB)
    assert c.retriever("hybrid").retrievers["dense"] is auto.dense is c.retriever("dense")
    # MiniLM reads English only: a Chinese query goes to BM25 alone, an English one is fused.
    assert auto.plan("孕妇能吃头孢吗？").method == "bm25"
    assert auto.plan("breathing problems and inhalers").method == "rrf"
    assert auto.plan("breathing problems and inhalers").label("zh") == "词语与含义相结合，含义占 70%（RRF 融合）"
    assert auto.plan("孕妇能吃头孢吗？").label() == "matching the query's words (BM25)"
    assert c.search("breathing problems and inhalers", 1, "auto")[0].doc_id == "asthma"
    stamp = (c.folder / "dense" / info["folder"] / "vectors.f32").read_bytes()
    monkeypatch.setattr(indexing, "passage_encoder", lambda spec, home=None: pytest.fail("re-encoded an unchanged chunk"))
    c = c.rebuild()  # same chunk texts: their vectors are reused, nothing is encoded
    assert (c.folder / "dense" / info["folder"] / "vectors.f32").read_bytes() == stamp


def test_a_collection_with_a_fine_tuned_model_survives_moving_the_home(home, tmp_path, monkeypatch):
    """The manifest names the registry model by reference, not by a path into the old home."""
    shutil.copytree(bundled_minilm(), home / ".models" / "finetuned" / "ward-minilm")
    c = Collection.create("demo", DOCS, BuildOptions(models=[str(finetuned("ward-minilm"))]))
    assert c.models == ["home:finetuned/ward-minilm"]
    assert str(home) not in (c.folder / "manifest.json").read_text()
    before = [h.chunk_id for h in c.search("How do I recognise a stroke?", 3, "dense")]
    moved = tmp_path / "moved-home"
    shutil.move(home, moved)
    monkeypatch.setenv("MEDSEARCH_HOME", str(moved))
    again = Collection.open("demo")
    assert [h.chunk_id for h in again.search("How do I recognise a stroke?", 3, "dense")] == before
    again = again.add_documents([Document("flu", "Influenza vaccine is recommended every year for adults over 65.")])
    assert again.search("yearly flu shot for older adults", 1, "dense")[0].doc_id == "flu"


def test_manifests_naming_models_by_absolute_path_read_as_references(home):
    c = Collection.create("demo", DOCS[:2], BuildOptions(models=[]))
    manifest = json.loads((c.folder / "manifest.json").read_text())
    old = "/srv/old-home/.models/finetuned/ward-e5"
    manifest |= {"dense": {old: {"folder": "x"}}, "default_model": old, "options": manifest["options"] | {"models": [old]}}
    (c.folder / "manifest.json").write_text(json.dumps(manifest))
    read = read_manifest(c.folder)
    assert list(read["dense"]) == read["options"]["models"] == [read["default_model"]] == ["home:finetuned/ward-e5"]
    assert ModelRef.parse(read["default_model"]).location(home) == str(home / ".models" / "finetuned" / "ward-e5")
    with pytest.raises(MedSearchError):
        ModelRef.parse("home:../../etc")


def test_hits_grouped_by_document():
    hits = [Hit(c, d, 1 - n / 10, n + 1, "bm25") for n, (c, d) in
            enumerate([("a1", "a"), ("b1", "b"), ("a2", "a"), ("c1", "c"), ("b2", "b"), ("a3", "a")])]
    groups = by_document(hits, 2)
    assert [[h.chunk_id for h in g] for g in groups] == [["a1", "a2", "a3"], ["b1", "b2"]]
    assert [g[0].rank for g in groups] == [1, 2] and best_per_document(hits, 2) == [g[0] for g in groups]


def test_search_by_document_shows_every_document_once(home):
    docs = [Document("long", "Asthma inhalers. " * 40 + "Asthma control plans. " * 40, "Asthma"), *DOCS]
    c = Collection.create("demo", docs, BuildOptions(models=[], chunk_size=200, overlap=0))
    found = c.search_by_document("asthma inhalers", 3, "bm25")
    assert [g[0].doc_id for g in found][0] == "long" and len({g[0].doc_id for g in found}) == len(found)
    assert len(found[0]) > 1 and all(h.doc_id == "long" for h in found[0])


def test_side_by_side_runs_searches_at_the_same_time():
    """Both calls must be inside at once to pass the barrier: run one after the other, they would time out."""
    meet = threading.Barrier(2, timeout=10)
    assert side_by_side({"bm25": lambda: meet.wait() + 10, "dense": lambda: meet.wait() + 20}) in (
        {"bm25": 10, "dense": 21}, {"bm25": 11, "dense": 20})
    with pytest.raises(ZeroDivisionError):
        side_by_side({"bm25": lambda: 1, "dense": lambda: 1 / 0})


def test_dev_qrels_tune_auto(home):
    queries = {"q1": "孕妇 头孢", "q2": "blood pressure salt", "q3": "stroke face arm", "q4": "asthma airways",
               "q5": "高血压 食盐"}
    qrels = {"dev": {"q1": {"preg": 1}, "q2": {"htn": 1}, "q3": {"stroke": 1}, "q4": {"asthma": 1}, "q5": {"htn": 1}}}
    c = Collection.create("demo", DOCS, BuildOptions(models=["minilm"]), eval_set=EvalSet(queries, qrels))
    pipe = c.pipeline()
    assert pipe.reason == "tuned" and "dev nDCG@10" in pipe.explain()
    ndcg = pipe.evidence["ndcg@10"]
    assert len(ndcg) == 8 and len(pipe.evidence["recall@100"]) == 8
    assert ndcg[f"{pipe.method}:{pipe.dense_weight}"] >= max(ndcg.values()) - 0.002
    assert Collection.open("demo").eval_set == EvalSet(queries, qrels)


def test_tune_breaks_ties_by_recall_then_simplicity():
    from medsearch.pipeline import CANDIDATES, tune

    def score(pipeline):  # every candidate ties on nDCG; weighted 0.5 keeps most relevant documents
        return {"ndcg@10": 0.9, "recall@100": 0.99 if (pipeline.method, pipeline.dense_weight) == ("weighted", 0.5) else 0.9}

    chosen = tune(score, "m", 10)
    assert (chosen.method, chosen.dense_weight) == ("weighted", 0.5)
    flat = tune(lambda p: {"ndcg@10": 0.5, "recall@100": 0.5}, "m", 10)
    assert (flat.method, flat.dense_weight) == CANDIDATES[0]  # full tie: the simplest (BM25)
    clear = tune(lambda p: {"ndcg@10": 0.8 if p.method == "dense" else 0.5, "recall@100": 0.1}, "m", 10)
    assert clear.method == "dense"
