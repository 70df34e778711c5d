"""One writer per collection, and store writes that are whole: concurrent appends, busy messages, undo races,
killed and retried imports."""

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from medsearch.collection import BuildOptions, Collection, delete_collection
from medsearch.locks import CollectionBusy
from medsearch.records import Document
from medsearch.store import Store

ROOT = Path(__file__).resolve().parents[1]


def _cli(home: Path, *args: str) -> subprocess.Popen:
    env = {**os.environ, "MEDSEARCH_HOME": str(home), "PYTHONPATH": str(ROOT)}
    return subprocess.Popen([sys.executable, "-m", "medsearch", *args], env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


def test_two_appends_at_once_keep_both_files(tmp_path):
    (tmp_path / "base.csv").write_text("id,text\nbase,Gout is a form of arthritis.\n", encoding="utf-8")
    for name in ("a", "b"):
        rows = "".join(f"{name}{i},Document {i} of file {name} about asthma inhalers.\n" for i in range(30))
        (tmp_path / f"{name}.csv").write_text("id,text\n" + rows, encoding="utf-8")
    home = tmp_path / "home"
    base = _cli(home, "ingest", "kb", str(tmp_path / "base.csv"), "--no-dense")
    base.communicate(timeout=300)
    assert base.returncode == 0
    appends = [_cli(home, "ingest", "kb", str(tmp_path / f"{name}.csv"), "--append") for name in ("a", "b")]
    for proc in appends:
        _, err = proc.communicate(timeout=600)
        assert proc.returncode == 0, err
    ids = set(Collection.open("kb", home).documents)
    assert ids == {"base"} | {f"a{i}" for i in range(30)} | {f"b{i}" for i in range(30)}


def test_a_busy_collection_says_who_holds_it_and_is_left_untouched(tmp_path, held_elsewhere):
    docs = [Document("d1", "Asthma is a chronic airway disease.")]
    Collection.create("kb", docs, BuildOptions(models=[]), home=tmp_path)
    with held_elsewhere("kb", "rebuild", tmp_path):
        with pytest.raises(CollectionBusy, match=r"busy: 'kb' is being changed \(rebuild\) since \d\d:\d\d") as busy:
            Collection.open("kb", tmp_path).add_documents([Document("d2", "Gout.")])
        assert (busy.value.action, busy.value.name) == ("rebuild", "kb")
        with pytest.raises(CollectionBusy):
            delete_collection("kb", tmp_path)
    assert set(Collection.open("kb", tmp_path).documents) == {"d1"}  # nothing half-done
    Collection.open("kb", tmp_path).add_documents([Document("d2", "Gout is arthritis.")])  # free again
    assert set(Collection.open("kb", tmp_path).documents) == {"d1", "d2"}


def test_an_append_through_an_old_object_keeps_documents_added_since(tmp_path):
    old = Collection.create("kb", [Document("d1", "Asthma.")], BuildOptions(models=[]), home=tmp_path)
    Collection.open("kb", tmp_path).add_documents([Document("d2", "Gout.")])
    old.add_documents([Document("d3", "Stroke.")])  # `old` was opened before d2 arrived
    assert set(Collection.open("kb", tmp_path).documents) == {"d1", "d2", "d3"}


def test_undos_at_once_remove_exactly_what_they_report(tmp_path):
    store = Store(tmp_path / "s.sqlite")
    for n in range(200):
        store.label("q", f"d{n}", "text", "positive", "ann")
    undone: list[dict] = []

    def undo_all():
        while (row := store.undo_label("ann")) is not None:
            undone.append(row)

    threads = [threading.Thread(target=undo_all) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(r["doc_id"] for r in undone) == sorted(f"d{n}" for n in range(200))  # each once
    assert store.annotator_totals() == {}


IMPORT = """
import sys
from medsearch.store import Store
Store(sys.argv[1]).import_triplets([{"query": f"q{i}", "positive": "p" * 200, "negative": "n" * 200}
                                    for i in range(int(sys.argv[2]))])
print("done", flush=True)
"""


def test_a_killed_import_leaves_nothing_and_a_retry_adds_each_triplet_once(tmp_path):
    path, n = str(tmp_path / "s.sqlite"), 300_000
    Store(path)
    child = subprocess.Popen([sys.executable, "-c", IMPORT, path, str(n)], env={**os.environ, "PYTHONPATH": str(ROOT)},
                             stdout=subprocess.PIPE, text=True)
    time.sleep(1.5)  # mid-import: its transaction is open
    child.send_signal(signal.SIGKILL)
    child.wait()
    assert len(Store(path).rows("triplets", -1)) in (0, n)  # all or nothing, never a part
    store = Store(path)
    store.import_triplets([{"query": "q0", "positive": "p" * 200, "negative": "n" * 200}] * 3)
    assert store.import_triplets([{"query": f"q{i}", "positive": "p" * 200, "negative": "n" * 200}
                                  for i in range(n)]) in (n - 1, 0)
    assert len(store.rows("triplets", -1)) == n
    assert store.import_triplets([{"query": "q1", "positive": "p" * 200, "negative": "n" * 200}]) == 0
