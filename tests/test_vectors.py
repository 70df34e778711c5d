"""Vector stores on disk: FAISS exact, HNSW and IVF-PQ, deletions, filters pushed into the index."""

import numpy as np
import pytest

from medsearch.filters import Filter
from medsearch.records import MedSearchError
from medsearch.vectors import EXACT_FILTERED, FaissStore, VectorFile, choose_kind


def _vectors(n: int, dim: int = 32, seed: int = 0) -> np.ndarray:
    vectors = np.random.default_rng(seed).normal(size=(n, dim)).astype(np.float32)
    return vectors / np.linalg.norm(vectors, axis=1, keepdims=True)


def _exact(vectors: np.ndarray, queries: np.ndarray, k: int, rows: np.ndarray) -> np.ndarray:
    return rows[np.argsort(-(queries @ vectors.T), axis=1, kind="stable")[:, :k]]


def test_kinds_agree_with_exact_search_and_survive_a_round_trip(tmp_path):
    vectors, rows = _vectors(3000), np.arange(100, 3100)
    queries = vectors[:50] + 0.05 * _vectors(50, seed=1)
    truth = _exact(vectors, queries, 10, rows)
    for kind, least in (("flat", 1.0), ("hnsw", 0.95), ("ivfpq", 0.5)):
        store = FaissStore.of(tmp_path / kind, vectors, kind, rows=rows)
        described = store.save("1")
        again = FaissStore.open(tmp_path / kind, described)
        assert again.describe()["index"] == kind and len(again) == 3000
        _, found = again.search(queries, 10)
        recall = np.mean([len(set(a) & set(b)) / 10 for a, b in zip(truth, found)])
        assert recall >= least, (kind, recall)
        assert (found[:, 0] == rows[:50]).mean() >= least  # a vector finds itself first
    assert FaissStore.open(tmp_path / "ivfpq", described).describe()["params"]["nprobe"] >= 1


def test_auto_kind_is_exact_when_small_and_hnsw_when_large():
    assert choose_kind("auto", 49_999) == "flat" and choose_kind("auto", 50_000) == "hnsw"
    assert choose_kind("ivfpq", 10) == "ivfpq"
    with pytest.raises(MedSearchError, match="Unknown vector index"):
        choose_kind("annoy", 10)


@pytest.mark.parametrize("kind", ["flat", "hnsw"])
def test_deleted_rows_never_come_back_and_compaction_drops_them(tmp_path, kind):
    vectors = _vectors(1000)
    store = FaissStore.of(tmp_path, vectors, kind)
    store.remove(np.arange(0, 100))
    _, found = store.search(vectors[:100], 5)
    assert not set(found.ravel()) & set(range(100)) and (found >= 0).all()
    reopened = FaissStore.open(tmp_path, store.save("2"))
    assert len(reopened) == 900 and not set(reopened.search(vectors[:100], 5)[1].ravel()) & set(range(100))
    reopened.remove(np.arange(100, 400))  # 40% deleted: rebuilt without them
    compact = reopened.compacted(np.arange(400, 1000))
    assert compact is not reopened and compact.index.ntotal == 600 and not len(compact.removed)


@pytest.mark.parametrize("kind", ["flat", "hnsw", "ivfpq"])
def test_a_filter_returns_k_hits_whenever_k_rows_match(tmp_path, kind):
    vectors = _vectors(4000)
    rare = np.array([7, 1500, 3999])            # 3 rows of a rare value among 4,000
    common = np.arange(0, 4000, 2)              # half of the rows
    resolve = {"rare": rare, "common": common}
    store = FaissStore.of(tmp_path, vectors, kind, resolve=lambda where: resolve[next(iter(where.wanted["tag"]))])
    _, found = store.search(vectors[100:110], 10, Filter({"tag": frozenset({"rare"})}))
    assert all(sorted(r[r >= 0]) == sorted(rare) for r in found)
    scores, found = store.search(vectors[100:110], 10, Filter({"tag": frozenset({"common"})}))
    assert (found >= 0).all() and np.isin(found, common).all()
    truth = _exact(vectors[common], vectors[100:110], 10, common)
    assert (found == truth).all()  # at most EXACT_FILTERED matching rows: searched exactly
    assert len(common) <= EXACT_FILTERED


def test_the_vector_file_appends_reads_by_row_and_truncates(tmp_path):
    file = VectorFile(tmp_path, 4)
    file.append(np.array([3, 5]), np.eye(4)[:2])
    file.append(np.array([9]), np.eye(4)[2:3])
    assert len(file) == 3 and (file.read(np.array([9, 3])) == np.eye(4)[[2, 0]]).all()
    file.truncate(2)
    assert len(file) == 2 and list(file.all()[0]) == [3, 5]


@pytest.mark.parametrize("kind", ["flat", "hnsw", "ivfpq"])
def test_a_broad_filter_goes_through_the_index_selector(tmp_path, kind, monkeypatch):
    import medsearch.vectors as vectors

    monkeypatch.setattr(vectors, "EXACT_FILTERED", 100)  # 2,000 matching rows: searched through the index
    data, common = _vectors(4000), np.arange(0, 4000, 2)
    store = FaissStore.of(tmp_path, data, kind, resolve=lambda where: common)
    _, found = store.search(data[100:110], 10, Filter({"tag": frozenset({"common"})}))
    assert (found >= 0).all() and np.isin(found, common).all()
    if kind != "ivfpq":
        truth = _exact(data[common], data[100:110], 10, common)
        assert np.mean([len(set(a) & set(b)) / 10 for a, b in zip(truth, found)]) >= (1.0 if kind == "flat" else 0.9)
