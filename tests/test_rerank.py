"""Cross-encoder reranking with a tiny BERT cross-encoder built here (no download): training, reranking a
collection's first-stage hits, filters, errors, and the command line."""

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from medsearch.collection import BuildOptions, Collection
from medsearch.records import Document, MedSearchError
from medsearch.rerank import list_rerankers, load_reranker, passage_text, rerankers_root, train_reranker
from medsearch.trainers import labelled_pairs
from tests.test_cli import run
from tests.tiny_models import tiny_cross_encoder as build_cross_encoder

WORDS = ("asthma inhaler inhaled steroids airways stroke arm weakness face speech emergency diabetes metformin diet "
         "exercise vaccine flu influenza elderly autumn salt blood pressure hypertension heart kidney the a of is and "
         "with for in to are by . , ;").split()
DOCS = [
    Document("asthma", "Asthma is treated with inhaled steroids for the airways.", "Asthma", metadata={"dept": "lung"}),
    Document("stroke", "Stroke signs are face and arm weakness and speech; call emergency.", "Stroke",
             metadata={"dept": "brain"}),
    Document("diabetes", "Diabetes is treated with diet, exercise and metformin.", "Diabetes", metadata={"dept": "endo"}),
    Document("vaccine", "The elderly are given the flu vaccine in autumn.", "Influenza", metadata={"dept": "lung"}),
    Document("salt", "Salt in the diet and blood pressure: hypertension and the heart.", "Hypertension",
             metadata={"dept": "heart"}),
    Document("kidney", "The kidney and blood pressure; diet for the kidney.", "Kidney", metadata={"dept": "endo"}),
]
TEXT = {d.id: f"{d.title}\n{d.text}" for d in DOCS}  # as `passage_text` shows a chunk to the cross-encoder
QUERY = "treated diet blood pressure arm flu"  # BM25 finds all six documents
TRIPLETS = [
    {"query": "asthma inhaler", "positive": TEXT["asthma"], "negative": TEXT["salt"]},
    {"query": "stroke arm weakness", "positive": TEXT["stroke"], "negative": TEXT["kidney"]},
    {"query": "diabetes metformin", "positive": TEXT["diabetes"], "negative": TEXT["salt"]},
    {"query": "flu vaccine elderly", "positive": TEXT["vaccine"], "negative": TEXT["kidney"]},
    {"query": "asthma airways", "positive": TEXT["asthma"], "negative": None},
]


def tiny_cross_encoder(folder):
    """An untrained BERT cross-encoder reading WORDS, saved in `folder`."""
    return build_cross_encoder(folder, WORDS)


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """(card, folder, steps reported) of the tiny cross-encoder trained on TRIPLETS."""
    root = tmp_path_factory.mktemp("reranker")
    steps = []
    card = train_reranker(TRIPLETS, str(tiny_cross_encoder(root / "base")), root / "tuned", epochs=40, batch_size=5,
                          learning_rate=3e-3, progress=lambda step: steps.append((step["step"], step["total"])))
    return card, root / "tuned", steps


def beir_folder(folder):
    """DOCS as a BEIR folder with three test queries."""
    (folder / "qrels").mkdir(parents=True)
    (folder / "corpus.jsonl").write_text("".join(json.dumps({"_id": d.id, "title": d.title, "text": d.text}) + "\n"
                                                 for d in DOCS), encoding="utf-8")
    queries = {"q1": ("asthma inhaler", "asthma"), "q2": ("diet blood pressure", "salt"), "q3": ("flu", "vaccine")}
    (folder / "queries.jsonl").write_text("".join(json.dumps({"_id": q, "text": text}) + "\n"
                                                  for q, (text, _) in queries.items()), encoding="utf-8")
    (folder / "qrels" / "test.tsv").write_text("".join(f"{q}\t{d}\t1\n" for q, (_, d) in queries.items()))
    return folder


@pytest.fixture
def collection(tmp_path):
    return Collection.create("rr", DOCS, BuildOptions(models=[]), home=tmp_path / "home")


def test_pairs_label_positives_and_hard_or_borrowed_negatives():
    pairs = labelled_pairs(TRIPLETS)
    assert pairs[:2] == [("asthma inhaler", TEXT["asthma"], 1.0), ("asthma inhaler", TEXT["salt"], 0.0)]
    # the last row has no negative: it borrows the positive of the next row asking something else
    assert pairs[-1] == ("asthma airways", TEXT["stroke"], 0.0)
    assert sum(label for *_, label in pairs) == len(TRIPLETS) and len(pairs) == 2 * len(TRIPLETS)


def test_training_saves_a_reranker_that_puts_positives_first(trained):
    card, folder, steps = trained
    assert steps[-1] == (card["steps"], card["steps"]) and len(steps) == card["steps"] == 80
    assert card["loss_end"] < card["loss_start"] / 2
    assert card["trainer"] == "sentence-transformers CrossEncoderTrainer"
    assert json.loads((folder / "medsearch.json").read_text())["kind"] == "cross-encoder"
    reranker = load_reranker(str(folder))  # reloaded from the saved folder
    for t in TRIPLETS[:4]:
        positive, negative = reranker.scores(t["query"], [t["positive"], t["negative"]])
        assert positive > negative, t["query"]


def test_reranked_hits_follow_the_cross_encoders_own_scores(trained, collection):
    from sentence_transformers import CrossEncoder

    folder = trained[1]
    first = collection.search(QUERY, 5, "bm25")
    assert len(first) == 5
    hits = collection.search(QUERY, 5, "bm25", rerank=str(folder), rerank_k=4)
    scores = CrossEncoder(str(folder), device="cpu").predict(
        [(QUERY, passage_text(collection.chunks[h.chunk_id])) for h in first[:4]])
    expected = [first[i].chunk_id for i in sorted(range(4), key=lambda i: -scores[i])]
    assert [h.chunk_id for h in hits[:4]] == expected != [h.chunk_id for h in first[:4]]  # it did reorder
    assert sorted(round(h.score, 5) for h in hits[:4]) == sorted(round(float(s), 5) for s in scores)
    assert {h.retriever for h in hits[:4]} == {"bm25+rerank"} and [h.rank for h in hits] == [1, 2, 3, 4, 5]
    assert (hits[4].chunk_id, hits[4].retriever, hits[4].score) == (first[4].chunk_id, "bm25", first[4].score)
    reranked = collection.reranked("bm25", None, str(folder), 4)
    assert reranked.last_ms > 0 and reranked.reranker is collection.reranked("auto", None, str(folder)).reranker


def test_filters_reach_the_first_stage(trained, collection):
    hits = collection.search("the diet", 5, "bm25", filters={"dept": "endo"}, rerank=str(trained[1]))
    assert {h.doc_id for h in hits} == {"diabetes", "kidney"}
    assert collection.search("asthma", 5, "tfidf", filters={"dept": "heart"}, rerank=str(trained[1])) == []


def test_a_missing_or_wrong_model_is_one_clear_error(collection):
    with pytest.raises(MedSearchError, match="Cannot load reranker 'nobody/no-such-reranker'") as missing:
        collection.search("asthma", 3, "bm25", rerank="nobody/no-such-reranker")
    assert "\n" not in str(missing.value)
    with pytest.raises(MedSearchError, match="is an embedding model, not a reranker"):
        load_reranker("minilm")


def test_cli_trains_searches_and_evaluates_with_a_reranker(trained, tmp_path):
    home, folder = tmp_path / "home", str(trained[1])
    triplets = tmp_path / "triplets.jsonl"
    triplets.write_text("".join(json.dumps(t) + "\n" for t in TRIPLETS), encoding="utf-8")
    base = str(tiny_cross_encoder(tmp_path / "base"))
    made = run("train-reranker", "--triplets", str(triplets), "--base", base, "--name", "ward",
               "--epochs", "2", "--batch-size", "4", home=home)
    out = rerankers_root(home) / "ward"  # saved among the server's rerankers, which the app offers
    assert "saved a cross-encoder reranker" in made.stdout and (out / "model.safetensors").is_file()
    assert list_rerankers(home) == ["ward"] and json.loads((out / "medsearch.json").read_text())["steps"] == 6
    again = run("train-reranker", "--triplets", str(triplets), "--base", base, "--name", "ward", home=home, check=False)
    assert again.returncode == 1 and "A reranker named 'ward' exists already" in again.stderr

    csv = tmp_path / "guide.csv"
    csv.write_text("id,title,text\n" + "".join(f'{d.id},{d.title},"{d.text}"\n' for d in DOCS), encoding="utf-8")
    run("ingest", "guide", str(csv), "--no-dense", home=home)
    shown = run("search", "guide", QUERY, "--retriever", "bm25", "--rerank", folder,
                "--rerank-k", "3", home=home)
    assert re.search(r"reranked the top 3 bm25 hits with .+ in \d+ ms", shown.stderr)
    rows = json.loads(run("search", "guide", QUERY, "--retriever", "bm25", "--rerank", folder,
                          "--rerank-k", "3", "--json", "-k", "4", home=home).stdout)
    assert [r["retriever"] for r in rows] == ["bm25+rerank"] * 3 + ["bm25"]
    assert rows[0]["doc_id"] == Collection.open("guide", home).search(
        QUERY, 1, "bm25", rerank=folder, rerank_k=3)[0].doc_id
    by_name = json.loads(run("search", "guide", QUERY, "--retriever", "bm25", "--rerank", "ward", "--json", home=home).stdout)
    assert [r["doc_id"] for r in by_name] == [h.doc_id for h in Collection.open("guide", home).search(
        QUERY, len(by_name), "bm25", rerank=str(out))]  # a server reranker by its bare name
    failed = run("search", "guide", "asthma", "--rerank", "nobody/no-such-reranker", home=home, check=False)
    assert failed.returncode == 1 and failed.stderr.count("\n") == 1 and "Cannot load reranker" in failed.stderr

    report = json.loads(run("evaluate", str(beir_folder(tmp_path / "beir")), "--retriever", "bm25", "--rerank", folder,
                            "--rerank-k", "5", "--json", home=home).stdout)
    assert report["rerank"] == {"model": str(trained[1].resolve()), "k": 5} and 0 <= report["ndcg@10"] <= 1


def test_searching_without_a_reranker_loads_no_training_libraries():
    heavy = ("torch", "sentence_transformers", "transformers", "accelerate", "datasets")
    code = ("import sys, medsearch.cli, medsearch.collection, medsearch.rerank; medsearch.cli.parser(); "
            f"loaded = [m for m in {heavy!r} if m in sys.modules]; assert not loaded, loaded")
    subprocess.run([sys.executable, "-c", code], cwd=Path(__file__).parent.parent, check=True, timeout=300)
