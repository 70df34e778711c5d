"""The per-collection SQLite store: WAL, round trips, concurrent writers, survival across rebuilds."""

import json
import multiprocessing
import sqlite3

from medsearch.collection import BuildOptions, Collection
from medsearch.records import Document
from medsearch.store import Store


def _write_many(path: str, who: str, n: int) -> None:
    store = Store(path)
    for i in range(n):
        store.add_triplet(f"query {who} {i}", positive_id="p", positive="pos", negative_id="n", negative="neg",
                          annotator=who)


def test_round_trip_and_export(tmp_path):
    store = Store(tmp_path / "s.sqlite")
    answer = store.log_answer("孕妇能吃头孢吗？", "可以 [1]", "extractive", True, [1],
                              [{"n": 1, "doc_id": "d022", "text": "头孢…"}], 12.5, 3.0)
    store.add_feedback(answer, "wrong_citation", 1, "d022")
    store.add_triplet("孕妇能吃头孢吗？", negative_id="d022", negative="头孢…", source="answer")
    assert sqlite3.connect(tmp_path / "s.sqlite").execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    row = store.rows("answers")[0]
    assert json.loads(row["passages"])[0]["doc_id"] == "d022" and row["extractive"] == 1
    assert store.rows("feedback")[0]["kind"] == "wrong_citation"
    assert store.rows("triplets")[0]["status"] == "incomplete"  # a negative without a positive yet
    assert store.export_jsonl("triplets", tmp_path / "t.jsonl") == 1
    assert json.loads((tmp_path / "t.jsonl").read_text(encoding="utf-8"))["query"] == "孕妇能吃头孢吗？"


def test_two_processes_writing_at_once_lose_nothing(tmp_path):
    path = str(tmp_path / "s.sqlite")
    Store(path)
    ctx = multiprocessing.get_context("spawn")
    workers = [ctx.Process(target=_write_many, args=(path, who, 150)) for who in ("ann", "bob")]
    for w in workers:
        w.start()
    for w in workers:
        w.join(60)
    assert [w.exitcode for w in workers] == [0, 0]
    rows = Store(path).rows("triplets", 1000)
    assert len(rows) == 300 and {r["annotator"] for r in rows} == {"ann", "bob"}


def test_store_survives_a_rebuild(tmp_path):
    collection = Collection.create("c", [Document("a", "asthma inhaler")], BuildOptions(models=[]), home=tmp_path)
    Store.of("c", tmp_path).add_triplet("asthma", negative_id="a", negative="asthma inhaler")
    collection.rebuild(options=BuildOptions(chunk_size=200, models=[]))
    assert len(Store.of("c", tmp_path).rows("triplets")) == 1


def test_training_triplets_combine_labels_and_stored(tmp_path):
    store = Store(tmp_path / "s.sqlite")
    store.label("q", "p1", "positive text", "positive", "ann")
    store.import_triplets([{"query": "q2", "positive": "p", "negative": "n"}], source="mined")
    store.add_triplet("q3", negative_id="x", negative="wrong citation", source="answer")  # incomplete: left out
    assert [(t["query"], t["negative"]) for t in store.training_triplets()] == [("q", None), ("q2", "n")]
