"""Triplet files in the seed format, mining with the false-negative guard, annotation helpers."""

import io
import json
import re

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from medsearch.collection import BuildOptions, Collection
from medsearch.compare import judged
from medsearch.i18n import FILE_ERRORS
from medsearch.records import Document, MedSearchError
from medsearch.store import Store
from medsearch.triplets import (
    MiningOptions,
    candidates,
    mine,
    near_positives,
    next_candidate,
    pairs_from_eval,
    pairs_from_file,
    pairs_from_path,
    read_queries,
    read_triplets,
    save_triplets,
    suggested_negatives,
    triplets_from_path,
    write_triplets,
)

SEED = [{"query": "孕妇能吃头孢吗？", "positive": "头孢菌素在妊娠期相对安全。", "negative": "喹诺酮类孕妇禁用。"},
        {"query": "What is gout?", "positive": "Gout is arthritis caused by urate crystals.", "negative": None}]


@pytest.mark.parametrize("fmt,name", [("jsonl", "t.jsonl"), ("csv", "t.csv")])
def test_seed_format_round_trip(fmt, name):
    data = write_triplets(SEED, fmt)
    assert read_triplets(data, name) == SEED
    if fmt == "jsonl":
        assert json.loads(data.decode().splitlines()[0]) == SEED[0]


@pytest.mark.parametrize("data,name,message", [(b'{"query": "q"}\n', "t.jsonl", "record 1 needs"),
                                               (b"question,answer\nq,a\n", "t.csv", "missing column"),
                                               (b"", "t.jsonl", "empty"), (b"\n\n", "t.jsonl", "no triplets"), (b"{oops\n", "t.jsonl", "line 1")])
def test_bad_triplet_files_name_file_and_problem(data, name, message):
    with pytest.raises(MedSearchError, match=message) as caught:
        read_triplets(data, name)
    error = caught.value
    assert str(error).startswith(name)
    chinese = FILE_ERRORS(error.code, "zh", **dict.fromkeys(error.params, "…"))  # parameters: the file's own words
    assert not re.search(r"[A-Za-z]{4,}", re.sub(r"query|positive|anchor|JSON", "", chinese))


PAIRS = [{"query": t["query"], "positive": t["positive"]} for t in SEED]


@pytest.mark.parametrize("target", ["t.parquet", "hf-folder"])
def test_parquet_and_datasets_folder_round_trips(tmp_path, target):
    path = tmp_path / target
    save_triplets(SEED, path)
    assert triplets_from_path(path) == SEED
    save_triplets(PAIRS, path)  # replaces what was there
    assert pairs_from_path(path) == PAIRS
    assert triplets_from_path(path) == [dict(p, negative=None) for p in PAIRS]
    assert read_triplets(write_triplets(SEED, "parquet"), "t.parquet") == SEED


def test_files_in_sentence_transformers_columns(tmp_path):
    save_triplets(SEED, tmp_path / "t.parquet")
    save_triplets(PAIRS, tmp_path / "pairs")
    assert pq.read_table(tmp_path / "t.parquet").column_names == ["anchor", "positive", "negative"]
    import datasets

    assert datasets.load_from_disk(str(tmp_path / "pairs")).column_names == ["anchor", "positive"]
    theirs = io.BytesIO()  # written by another tool, not by MedSearch
    pq.write_table(pa.table({"anchor": ["What is gout?"], "positive": ["Arthritis from urate crystals."],
                             "negative": ["Asthma narrows the airways."]}), theirs)
    assert read_triplets(theirs.getvalue(), "st.parquet") == [
        {"query": "What is gout?", "positive": "Arthritis from urate crystals.", "negative": "Asthma narrows the airways."}]
    qa = io.BytesIO()
    pq.write_table(pa.table({"question": ["头痛怎么办"], "answer": ["多休息"]}), qa)
    assert pairs_from_file(qa.getvalue(), "qa.parquet") == [{"query": "头痛怎么办", "positive": "多休息"}]


def test_dataset_dict_folders_give_their_train_split(tmp_path):
    import datasets

    rows = datasets.Dataset.from_dict({"query": ["q"], "positive": ["p"], "negative": ["n"]})
    other = datasets.Dataset.from_dict({"query": ["q2"], "positive": ["p2"], "negative": [None]})
    datasets.DatasetDict({"test": other, "train": rows}).save_to_disk(str(tmp_path / "both"))
    assert triplets_from_path(tmp_path / "both") == [{"query": "q", "positive": "p", "negative": "n"}]
    datasets.DatasetDict({"validation": rows, "test": rows}).save_to_disk(str(tmp_path / "no-train"))
    with pytest.raises(MedSearchError, match=r"^no-train: has no 'train' split \(its splits: validation, test\)"):
        triplets_from_path(tmp_path / "no-train")


@pytest.mark.parametrize("make,message", [
    (lambda p: p.mkdir(), "not a folder saved by Hugging Face datasets"),
    (lambda p: p.write_bytes(b"PAR1 not really"), "not a readable Parquet file"),
    (lambda p: pq.write_table(pa.table({"question": ["q"], "text": ["t"]}), p), r"missing column\(s\) query / anchor, positive"),
    (lambda p: None, "file not found"),
])
def test_bad_parquet_and_folders_are_one_line(tmp_path, make, message):
    path = tmp_path / "x.parquet"
    make(path)
    with pytest.raises(MedSearchError, match=message) as caught:
        triplets_from_path(path)
    assert str(caught.value).startswith("x.parquet: ") and "\n" not in str(caught.value)


def test_targets_triplets_cannot_be_saved_to(tmp_path):
    with pytest.raises(MedSearchError, match=r"t.txt: unsupported file type '.txt'"):
        save_triplets(SEED, tmp_path / "t.txt")
    with pytest.raises(MedSearchError, match=r"empty: no rows to save"):  # datasets could not load it back
        save_triplets([], tmp_path / "empty")


def test_mining_the_demo_gives_valid_triplets(demo_home):
    demo = Collection.open("demo", demo_home)
    pairs = pairs_from_eval(demo)
    triplets = mine(demo, pairs, MiningOptions(negatives=2))
    assert len(triplets) >= len(pairs)
    relevant = {p["query"]: set(p["relevant"]) for p in pairs}
    for t in triplets:
        assert t["negative_id"] != t["positive_id"] and t["negative"] != t["positive"]
        assert t["negative_id"] not in relevant[t["query"]]  # judged-relevant documents are never negatives
    per_query = {}
    for t in triplets:
        per_query.setdefault(t["query"], []).append(t["negative_id"])
    assert all(len(n) == len(set(n)) <= 2 for n in per_query.values())


def test_false_negative_guard(tmp_path):
    docs = [Document("a", "Metformin is the first-line drug for type 2 diabetes and is taken with meals."),
            Document("b", "Metformin is the first line drug for type 2 diabetes, taken with meals."),
            Document("c", "Insulin is needed in type 1 diabetes because the pancreas makes none."),
            Document("d", "Gout attacks are treated with colchicine or NSAIDs.")]
    collection = Collection.create("guard", docs, BuildOptions(models=[]), home=tmp_path)
    pair = {"query": "first-line drug for type 2 diabetes", "positive": docs[0].text, "positive_id": "a"}
    negatives = [t["negative_id"] for t in mine(collection, [pair], MiningOptions(("bm25",), negatives=3))]
    assert "b" not in negatives and "a" not in negatives and "c" in negatives  # b says the same as the positive
    loose = [t["negative_id"] for t in mine(collection, [pair], MiningOptions(("bm25",), negatives=3, max_overlap=1.01))]
    assert "b" in loose


def test_dense_candidates_pass_the_relative_margin_guard(demo_home):
    """Dense negatives come through sentence-transformers' mine_hard_negatives: each scores at least
    `relative_margin` of the positive's score below it, so a stricter margin keeps fewer."""
    demo = Collection.open("demo", demo_home)
    pairs = pairs_from_eval(demo)[:6]
    options = {"retrievers": ("dense",), "negatives": 15, "depth": 15, "max_overlap": 1.01}  # keep all it passes
    loose = mine(demo, pairs, MiningOptions(relative_margin=0.0, **options))
    strict = mine(demo, pairs, MiningOptions(relative_margin=0.05, **options))
    assert 0 < len(strict) < len(loose)
    encoder = demo.dense().encoder
    for t in strict:
        q, pos, neg = encoder.encode([t["query"]], query=True)[0], *encoder.encode([t["positive"], t["negative"]], query=False)
        assert q @ neg <= (q @ pos) * 0.95 + 0.02  # 0.02: the index's vectors are chunks', the guard's whole documents'


def test_pairs_and_queries_from_files():
    assert pairs_from_file("question,answer\n头痛怎么办,多休息\n".encode(), "qa.csv") == [
        {"query": "头痛怎么办", "positive": "多休息"}]
    with pytest.raises(MedSearchError, match="qa.jsonl: record 1"):
        pairs_from_file(b'{"question": "q"}\n', "qa.jsonl")
    assert read_queries("孕妇能吃头孢吗？\n\nWhat is gout?\n孕妇能吃头孢吗？\n".encode("gb18030"), "q.txt") == [
        "孕妇能吃头孢吗？", "What is gout?"]
    assert read_queries(b"id,question\n1,What is gout?\n", "q.csv") == ["What is gout?"]


def test_annotation_helpers_and_labels(demo_home, tmp_path):
    demo = Collection.open("demo", demo_home)
    shown = candidates(demo, "孕妇能吃头孢吗？")
    assert [c.doc_id for c in shown] == [c.doc_id for c in candidates(demo, "孕妇能吃头孢吗？")]  # stable order
    assert len(shown) > 5 and all(c.ranks for c in shown)
    store = Store(tmp_path / "s.sqlite")
    query, first = "孕妇能吃头孢吗？", shown[0]
    assert suggested_negatives(demo, query, shown, store.labels_for(query)) == []
    store.label(query, first.doc_id, first.text, "positive", "ann")
    store.label(query, shown[1].doc_id, shown[1].text, "negative", "bob")
    store.label(query, shown[2].doc_id, shown[2].text, "skip", "bob")
    labels = store.labels_for(query)
    suggested = suggested_negatives(demo, query, shown, labels)
    assert suggested and not set(suggested) & set(labels)
    assert store.annotator_totals() == {"bob": 2, "ann": 1}
    assert store.triplets_from_labels() == [{"query": query, "positive": first.text, "negative": shown[1].text,
                                             "positive_id": first.doc_id, "negative_id": shown[1].doc_id}]
    assert store.undo_label("bob")["label"] == "skip" and store.annotator_totals()["bob"] == 1
    twin = near_positives(demo, [first, *shown[1:]], [first.doc_id], max_overlap=0.0)
    assert first.doc_id not in twin and twin


@pytest.mark.parametrize("query", ["孕妇能吃头孢吗？", "How do I recognize a stroke?", "HbA1c", "What is gout?"])
def test_suggested_hard_negatives_are_never_judged_relevant_nor_near_a_positive(demo_home, query):
    """Issue 13: a judged-relevant passage was offered as a hard negative. With one relevant document marked
    positive, the best-ranked unlabeled candidates used to include the others; now none is judged relevant and none
    shares half its words with a positive."""
    demo = Collection.open("demo", demo_home)
    shown = candidates(demo, query)
    relevant = {d for d, g in judged(demo, query).items() if g > 0}
    first = next(c.doc_id for c in shown if c.doc_id in relevant)
    labels = {first: "positive"}
    by_rank = sorted((c for c in shown if c.doc_id != first), key=lambda c: min(c.ranks.values()))
    assert {c.doc_id for c in by_rank[:3]} & relevant  # what the old rule (best-ranked unlabeled) suggested
    suggested = suggested_negatives(demo, query, shown, labels)
    assert suggested and not set(suggested) & relevant
    assert not set(suggested) & near_positives(demo, shown, relevant | {first})
    assert suggested == [c.doc_id for c in by_rank if c.doc_id in suggested]  # still the best-ranked first


def test_no_suggestion_close_to_a_marked_positive(tmp_path):
    docs = [Document("a", "Metformin is the first-line drug for type 2 diabetes and is taken with meals."),
            Document("b", "Metformin is the first line drug for type 2 diabetes, taken with meals."),
            Document("c", "Insulin is needed in type 1 diabetes because the pancreas makes none."),
            Document("d", "Gout attacks are treated with colchicine or NSAIDs.")]
    collection = Collection.create("near", docs, BuildOptions(models=[]), home=tmp_path)
    shown = candidates(collection, "metformin type 2 diabetes first-line drug")
    assert {c.doc_id for c in shown} >= {"a", "b", "c"}
    suggested = suggested_negatives(collection, "metformin type 2 diabetes first-line drug", shown, {"a": "positive"})
    assert "b" not in suggested and "c" in suggested  # b says what the positive says
    assert near_positives(collection, shown, ["a"]) == {"b"}


def test_next_candidate_wraps_and_skips_labeled(demo_home):
    shown = candidates(Collection.open("demo", demo_home), "What is gout?")
    ids = [c.doc_id for c in shown]
    assert next_candidate(shown, {}) == ids[0]
    assert next_candidate(shown, {ids[1]: "skip"}, after=ids[0]) == ids[2]
    assert next_candidate(shown, {ids[0]: "positive"}, after=ids[-1]) == ids[1]  # wraps round
    assert next_candidate(shown, dict.fromkeys(ids, "negative"), after=ids[0]) is None
