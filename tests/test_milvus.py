"""The Milvus vector store against a real Milvus server (one per test session: the `milvus_uri` fixture)."""

import json

import numpy as np
import pytest

from medsearch.filters import Filter
from medsearch.milvus import MilvusStore, collection_name, column_key, filter_expression, milvus_uri
from medsearch.records import MedSearchError

pytest.importorskip("pymilvus")

N, DIM = 2_000, 384
RARE = [17, 1_234, 1_999]                      # the 3 rows tagged "rare"
SOME = list(range(100, 1_600, 100))            # the 15 rows tagged "some"
HOSTILE = ['say "hi"', "it's", "back\\slash", "end\\", '\\"', 'x"]["y', "a][b", "meta[\"k\"]", "' or 1==1 or '",
           '" or row >= 0 or "', "new\nline", "tab\t\x00", "心内科/儿科", "😀", "%41", "~1", ""]
HOSTILE_COLUMN = '科 "co\\l" ][ \'x\''  # quotes, a backslash and `][` (which crashes Milvus 2.3.5's parser)
DEPARTMENTS = ["心内科", "神经科", "儿科", "外科"]


def unit(rows: int, seed: int) -> np.ndarray:
    vectors = np.random.default_rng(seed).standard_normal((rows, DIM)).astype(np.float32)
    return vectors / np.linalg.norm(vectors, axis=1, keepdims=True)


def row_metadata(i: int) -> dict:
    meta = {"lang": "en" if i % 2 else "zh", "科室": DEPARTMENTS[i % 4],
            "tag": "rare" if i in RARE else "some" if i in SOME else "common", "n": i % 7}
    if i < 1_000:
        meta[HOSTILE_COLUMN] = HOSTILE[i % len(HOSTILE)]
        meta["]["] = "odd"
    return meta


VECTORS = unit(N, 0)
METADATA = [row_metadata(i) for i in range(N)]
ROWS = np.arange(N, dtype=np.int64) * 3 + 5     # row numbers need not be 0..n-1
QUERIES = unit(6, 1)


def brute_force(queries: np.ndarray, k: int, keep=lambda meta: True) -> tuple[np.ndarray, np.ndarray]:
    """numpy's exact top-k among rows whose metadata passes `keep`, padded like the store."""
    allowed = np.array([i for i, meta in enumerate(METADATA) if keep(meta)], dtype=np.int64)
    scores, rows = np.zeros((len(queries), k), np.float32), np.full((len(queries), k), -1, np.int64)
    sims = queries @ VECTORS[allowed].T
    top = np.argsort(-sims, axis=1)[:, :k]
    scores[:, :top.shape[1]] = np.take_along_axis(sims, top, axis=1)
    rows[:, :top.shape[1]] = ROWS[allowed[top]]
    return scores, rows


def assert_same(got: tuple[np.ndarray, np.ndarray], expected: tuple[np.ndarray, np.ndarray]) -> None:
    np.testing.assert_array_equal(got[1], expected[1])
    np.testing.assert_allclose(got[0], expected[0], atol=1e-5)
    assert got[0].dtype == np.float32 and got[1].dtype == np.int64


@pytest.fixture(scope="module")
def store(milvus_uri):
    """The 2,000-vector collection (read-only for the tests)."""
    store = MilvusStore.create(milvus_uri, "medsearch_test_read", DIM)
    store.add(ROWS, VECTORS, METADATA)
    store.flush()
    yield store
    store.drop()


@pytest.fixture
def small(milvus_uri):
    """A fresh 50-vector collection a test may change."""
    store = MilvusStore.create(milvus_uri, "medsearch_test_write", DIM)
    store.add(ROWS[:50], VECTORS[:50], METADATA[:50])
    store.flush()  # searches read Bounded: rows are seen once flush returns
    yield store
    store.drop()


def test_top10_equals_brute_force(store):
    assert len(store) == N
    assert_same(store.search(QUERIES, 10), brute_force(QUERIES, 10))
    assert_same(store.search(QUERIES[0], 3), brute_force(QUERIES[:1], 3))


def test_filter_one_column(store):
    got = store.search(QUERIES, 10, Filter({"lang": frozenset({"zh"})}))
    assert_same(got, brute_force(QUERIES, 10, lambda meta: meta["lang"] == "zh"))


def test_filter_two_columns_chinese_and_numbers_as_text(store):
    where = Filter({"lang": frozenset({"en"}), "科室": frozenset({"儿科", "神经科"})})
    assert_same(store.search(QUERIES, 10, where),
                brute_force(QUERIES, 10, lambda meta: meta["lang"] == "en" and meta["科室"] in ("儿科", "神经科")))
    where = Filter.of({"n": [3], "科室": "心内科"})
    assert_same(store.search(QUERIES, 10, where),
                brute_force(QUERIES, 10, lambda meta: meta["n"] == 3 and meta["科室"] == "心内科"))


def test_rare_values_give_every_match_and_no_more(store):
    scores, rows = store.search(QUERIES, 10, Filter({"tag": frozenset({"rare"})}))
    for found, score in zip(rows, scores):
        assert sorted(found[:3]) == sorted(ROWS[RARE]) and (found[3:] == -1).all() and (score[3:] == 0).all()
    assert_same((scores, rows), brute_force(QUERIES, 10, lambda meta: meta["tag"] == "rare"))
    got = store.search(QUERIES, 10, Filter({"tag": frozenset({"some"})}))
    assert (got[1] >= 0).all() and set(got[1].ravel()) <= set(ROWS[SOME])
    assert_same(got, brute_force(QUERIES, 10, lambda meta: meta["tag"] == "some"))
    both = store.search(QUERIES[:1], 40, Filter({"tag": frozenset({"some", "rare"})}))
    assert (both[1][0, :18] >= 0).all() and (both[1][0, 18:] == -1).all()


def test_hostile_values_and_column_names(store):
    for value in HOSTILE:
        where = Filter({HOSTILE_COLUMN: frozenset({value})})
        expected = brute_force(QUERIES[:1], 100, lambda meta: meta.get(HOSTILE_COLUMN) == value)  # noqa: B023  (called at once)
        matching = 1_000 // len(HOSTILE) + (HOSTILE.index(value) < 1_000 % len(HOSTILE))
        assert (expected[1] >= 0).sum() == matching
        assert_same(store.search(QUERIES[:1], 100, where), expected)
    odd = store.search(QUERIES[:1], 10, Filter({"][": frozenset({"odd"})}))
    assert_same(odd, brute_force(QUERIES[:1], 10, lambda meta: meta.get("][") == "odd"))
    assert len(store) == N  # and the server is still up


def test_missing_column_never_matches(store):
    where = Filter({HOSTILE_COLUMN: frozenset({HOSTILE[0]}), "lang": frozenset({"en", "zh"})})
    assert set(store.search(QUERIES[:2], 200, where)[1].ravel()) - {-1} <= set(ROWS[:1_000])
    for where in (Filter({"no such column": frozenset({"en"})}), Filter({"lang": frozenset()}),
                  Filter({"lang": frozenset({"EN", "en ", ""})})):
        scores, rows = store.search(QUERIES[:2], 5, where)
        assert (rows == -1).all() and (scores == 0).all()


def test_padding_and_empty_requests(small):
    scores, rows = small.search(QUERIES[:2], 60)
    assert rows.shape == scores.shape == (2, 60) and (rows[:, :50] >= 0).all() and (rows[:, 50:] == -1).all()
    assert small.search(QUERIES, 0)[1].shape == (6, 0)
    assert small.search(np.empty((0, DIM), np.float32), 5)[1].shape == (0, 5)
    with pytest.raises(MedSearchError, match="at most"):
        small.search(QUERIES, 20_000)
    with pytest.raises(ValueError):
        small.search(np.zeros((1, 7), np.float32), 5)


def test_add_and_remove_seen_at_once(small):
    best = int(small.search(QUERIES[:1], 1)[1][0, 0])
    small.remove(np.array([best, 987_654_321]))
    assert len(small) == 49  # counts are Strong: seen at once
    small.flush()  # searches are Bounded: seen once flush returns
    assert best not in small.search(QUERIES[:1], 50)[1]
    small.add(ROWS[50:60], VECTORS[50:60], METADATA[50:60])
    assert len(small) == 59
    small.flush()
    got = small.search(QUERIES[:1], 10, Filter({"tag": frozenset({"common"})}))
    assert set(got[1][0]) & set(ROWS[50:60])
    assert len(small) == 59
    with pytest.raises(ValueError, match="repeat"):
        small.add(np.array([1, 1]), VECTORS[:2], METADATA[:2])
    with pytest.raises(ValueError):
        small.add(np.array([7]), VECTORS[:1, :10], METADATA[:1])


def test_batches_beyond_one_call(small, monkeypatch):
    monkeypatch.setattr("medsearch.milvus.BATCH", 7)
    small.add(ROWS[50:80], VECTORS[50:80])  # no metadata: no filter matches these
    assert len(small) == 80
    assert not set(small.search(QUERIES[:1], 80, Filter({"lang": frozenset({"en", "zh"})}))[1][0]) & set(ROWS[50:80])
    small.remove(ROWS[:75])
    assert len(small) == 5


def test_describe_open_round_trip(store, small, milvus_uri):
    described = json.loads(json.dumps(store.describe()))
    assert described == {"kind": "milvus", "uri": milvus_uri, "collection": "medsearch_test_read", "dim": DIM,
                         "index": {"index_type": "FLAT", "params": {}}, "metric": "IP"}
    again = MilvusStore.open(described)
    assert len(again) == N and again.describe() == described
    assert_same(again.search(QUERIES, 10, Filter({"lang": frozenset({"zh"})})),
                store.search(QUERIES, 10, Filter({"lang": frozenset({"zh"})})))
    with pytest.raises(MedSearchError, match="missing"):
        MilvusStore.open(described | {"collection": "medsearch_no_such"})
    with pytest.raises(MedSearchError, match="384"):
        MilvusStore.open(small.describe() | {"dim": 383})
    with pytest.raises(MedSearchError, match="incomplete"):
        MilvusStore.open({"kind": "milvus", "uri": milvus_uri})


@pytest.mark.parametrize("asked, index_type", [("hnsw", "HNSW"), ("ivfpq", "IVF_PQ"), ("auto", "FLAT")])
def test_vector_index_follows_the_choice(milvus_uri, asked, index_type):
    """The index Milvus builds is the one asked for (auto: exact below 50k rows), kept in the description;
    at 2,000 rows the approximate indexes still find most of the exact top 10."""
    store = MilvusStore.create(milvus_uri, "medsearch_test_index", DIM, asked, N)
    try:
        store.add(ROWS, VECTORS, METADATA)
        store.flush()
        built = store._client.describe_index("medsearch_test_index", "vector")
        assert built["index_type"] == store.describe()["index"]["index_type"] == index_type
        assert MilvusStore.open(json.loads(json.dumps(store.describe()))).index == store.index
        _, found = store.search(QUERIES, 10, Filter({"lang": frozenset({"zh"})}))
        _, exact = brute_force(QUERIES, 10, lambda meta: meta["lang"] == "zh")
        recall = np.mean([len(set(a) & set(b)) / 10 for a, b in zip(found, exact)])
        assert recall >= (1.0 if index_type == "FLAT" else 0.3 if index_type == "IVF_PQ" else 0.9)
    finally:
        store.drop()


def test_create_replaces_and_drop(milvus_uri, small):
    assert len(small) == 50
    again = MilvusStore.create(milvus_uri, "medsearch_test_write", DIM)
    assert len(again) == 0
    again.drop()
    with pytest.raises(MedSearchError, match="missing"):
        MilvusStore.open(again.describe())
    MilvusStore.create(milvus_uri, "medsearch_test_write", DIM)  # for the fixture's drop
    with pytest.raises(MedSearchError, match="collection name"):
        MilvusStore.create(milvus_uri, "has-hyphen", DIM)
    name = collection_name("心内科 notes-2024")
    assert name.startswith("medsearch_") and name != collection_name("心内科 notes_2024")
    MilvusStore.create(milvus_uri, name, 4).drop()


def test_unreachable_server_is_a_one_line_error(monkeypatch):
    for uri in ("http://127.0.0.1:1", "milvus://no-such-host.invalid:19530"):
        with pytest.raises(MedSearchError) as caught:
            MilvusStore.create(uri, "medsearch_x", 8)
        assert "Cannot reach the Milvus server" in str(caught.value) and "\n" not in str(caught.value)
        assert "Traceback" not in str(caught.value)
    with pytest.raises(MedSearchError, match="Cannot reach"):
        MilvusStore.open({"kind": "milvus", "uri": "http://127.0.0.1:1", "collection": "c", "dim": 8})


def test_milvus_uri(monkeypatch):
    monkeypatch.delenv("MEDSEARCH_MILVUS_URI", raising=False)
    assert milvus_uri("milvus://db.example.org:19531") == "http://db.example.org:19531"
    assert milvus_uri(" http://10.0.0.5:19530/ ") == "http://10.0.0.5:19530"
    assert milvus_uri("milvus://localhost") == "http://localhost:19530"
    assert milvus_uri("milvus://[::1]:19530") == "http://[::1]:19530"
    with pytest.raises(MedSearchError, match="MEDSEARCH_MILVUS_URI"):
        milvus_uri(None)
    monkeypatch.setenv("MEDSEARCH_MILVUS_URI", "milvus://envhost:1234")
    assert milvus_uri(None) == milvus_uri("") == "http://envhost:1234"
    for bad in ("https://h:1", "ftp://h:1", "localhost:19530", "milvus://h:port", "milvus://h:99999",
                "milvus://:19530", "http://h:1/db?x=1", "/tmp/milvus.db", "unix:///tmp/m.sock"):
        with pytest.raises(MedSearchError, match="looks like"):
            milvus_uri(bad)
    with pytest.raises(MedSearchError) as caught:
        milvus_uri("milvus://root:s3cret@h:19530")
    assert "s3cret" not in str(caught.value)


def test_filter_expression_escapes_hostile_text():
    assert filter_expression(None) == ""
    assert filter_expression(Filter({})) == ""
    where = Filter({"lang": frozenset({"zh", "en"}), "科室": frozenset({'a"b\\c'})})
    assert filter_expression(where) == 'meta["lang"] in ["en", "zh"] and meta["科室"] in ["a\\"b\\\\c"]'
    assert column_key('co"l\\][ x/~%') == "co%22l%5C%5D%5B%20x%2F%7E%25"
    assert column_key("") == "%" and column_key("%") == "%25" and column_key("科_室1") == "科_室1"
    for value in HOSTILE + ["\ud800 lone surrogate", "\u2028"]:
        expression = filter_expression(Filter({HOSTILE_COLUMN: frozenset({value})}))
        key, _, literal = expression.partition(" in ")
        assert key == f'meta["{column_key(HOSTILE_COLUMN)}"]' and all(ch.isalnum() or ch in "_%" for ch in key[6:-2])
        assert literal[0] == "[" and literal[-1] == "]" and "\n" not in literal and "\x00" not in literal
        assert json.loads(literal) == [value.encode("utf-8", "replace").decode()]
