"""Tests for medsearch.convert: Q/A sources to BEIR folders."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest

from medsearch.convert import convert
from medsearch.records import MedSearchError

NEIKE = (
    "高血压患者能吃党参吗？,我有高血压，可以吃党参吗？\n高血压病人可以口服党参的。\n\n\n"
    "高血压该治疗什么？，最近体检发现高血压，应当怎样治疗？\n控制食盐摄入，必要时服用降压药。\n\n\n"
    "糖尿病会遗传吗？,\n2型糖尿病有一定遗传倾向。\n\n\n"
    "重复问题,我有高血压，可以吃党参吗？\n高血压病人可以口服党参的。\n\n\n"
    "胃胀怎么办,喝水也胃胀\n清淡饮食，必要时做胃镜。\n\n\n"
    "只有标题没有答案\n\n\n"
)


def load_beir(out: Path):
    corpus = [json.loads(line) for line in (out / "corpus.jsonl").read_text("utf-8").splitlines()]
    queries = [json.loads(line) for line in (out / "queries.jsonl").read_text("utf-8").splitlines()]
    qrels = {}
    for split in ("test", "dev"):
        with (out / "qrels" / f"{split}.tsv").open(encoding="utf-8") as f:
            rows = list(csv.reader(f, delimiter="\t"))
        assert rows[0] == ["query-id", "corpus-id", "score"]
        qrels[split] = rows[1:]
    return corpus, queries, qrels


def check_beir(out: Path) -> tuple[list, list, dict]:
    """Every qrel references existing ids, splits are disjoint, every query is judged."""
    corpus, queries, qrels = load_beir(out)
    doc_ids = {d["_id"] for d in corpus}
    query_ids = {q["_id"] for q in queries}
    assert len(doc_ids) == len(corpus) and len(query_ids) == len(queries)
    assert all(set(d) == {"_id", "title", "text", "metadata"} and d["text"] for d in corpus)
    assert all(set(q) == {"_id", "text"} and q["text"] for q in queries)
    split_q = {}
    for split, rows in qrels.items():
        for q, d, score in rows:
            assert q in query_ids and d in doc_ids and score == "1"
        split_q[split] = {r[0] for r in rows}
    assert not split_q["test"] & split_q["dev"]
    assert split_q["test"] | split_q["dev"] == query_ids
    return corpus, queries, qrels


def test_neike_gb18030(tmp_path):
    src = tmp_path / "neike.txt"
    src.write_bytes(NEIKE.encode("gb18030"))
    counts = convert(src, tmp_path / "out", dev_fraction=0.25)
    corpus, queries, qrels = check_beir(tmp_path / "out")
    assert counts["format"] == "neike" and counts["pairs"] == 5
    # the duplicate block collapses: 4 distinct questions, 4 distinct answers
    assert counts["queries"] == len(queries) == 4 and counts["docs"] == len(corpus) == 4
    texts = [q["text"] for q in queries]
    assert texts[:3] == ["我有高血压，可以吃党参吗？", "最近体检发现高血压，应当怎样治疗？", "糖尿病会遗传吗？"]
    assert corpus[0] == {"_id": "d1", "title": "", "text": "高血压病人可以口服党参的。", "metadata": {}}
    assert counts["dev_queries"] == 1 and counts["test_queries"] == 3
    assert len(qrels["dev"]) == 1


def test_split_is_deterministic_and_seeded(tmp_path):
    src = tmp_path / "qa.csv"
    rows = "\n".join(f"question {i}?,answer {i}." for i in range(50))
    src.write_text("question,answer\n" + rows + "\n", encoding="utf-8")
    a = convert(src, tmp_path / "a", seed=1)
    convert(src, tmp_path / "b", seed=1)
    convert(src, tmp_path / "c", seed=2)
    assert a["dev_queries"] == 10 and a["test_queries"] == 40
    dev = lambda p: (p / "qrels" / "dev.tsv").read_text()  # noqa: E731
    assert dev(tmp_path / "a") == dev(tmp_path / "b") != dev(tmp_path / "c")
    check_beir(tmp_path / "c")
    assert convert(src, tmp_path / "d", limit=7)["queries"] == 7


def test_pubmedqa(tmp_path):
    data = {str(1000 + i): {"QUESTION": f"Question {i}?", "CONTEXTS": [f"Context {i}a.", f"Context {i}b."],
                           "LABELS": [], "MESHES": [], "final_decision": "yes"} for i in range(10)}
    src = tmp_path / "pqal_dev.json"
    src.write_text(json.dumps(data), encoding="utf-8")
    counts = convert(src, tmp_path / "out")
    corpus, queries, qrels = check_beir(tmp_path / "out")
    assert counts["format"] == "pubmedqa" and counts["queries"] == counts["docs"] == 10
    assert corpus[0]["text"] == "Context 0a.\nContext 0b." and corpus[0]["metadata"]["pmid"] == "1000"
    pairs = {(q, d) for rows in qrels.values() for q, d, _ in rows}
    assert ("q1", "d1") in pairs and len(pairs) == 10


def _medquad(doc_id: str, pairs: list[tuple[str, str]]) -> str:
    body = "".join(f'<QAPair pid="{i}"><Question qid="{doc_id}-{i}" qtype="information">{q}</Question>'
                   f"<Answer>{a}</Answer></QAPair>" for i, (q, a) in enumerate(pairs, start=1))
    return (f'<?xml version="1.0" encoding="UTF-8"?>\n<Document id="{doc_id}" source="NIDDK" url="u">'
            f"<Focus>F{doc_id}</Focus><QAPairs>{body}</QAPairs></Document>")


def test_medquad_folder_collapses_duplicate_answers(tmp_path):
    folder = tmp_path / "medquad" / "5_NIDDK_QA"
    folder.mkdir(parents=True)
    (folder / "1.xml").write_text(_medquad("1", [("What is A?", "A is a disease."), ("Who gets A?", "")]))
    (folder / "2.xml").write_text(_medquad("2", [("What is B?", "A is a disease."), ("How to treat B?", "Rest.")]))
    counts = convert(tmp_path / "medquad", tmp_path / "out")
    corpus, queries, qrels = check_beir(tmp_path / "out")
    assert counts["format"] == "medquad"
    assert counts["queries"] == 3 and counts["docs"] == 2
    pairs = sorted((q, d) for rows in qrels.values() for q, d, _ in rows)
    assert pairs == [("q1", "d1"), ("q2", "d1"), ("q3", "d2")]
    assert corpus[0]["metadata"]["source"] == "NIDDK" and corpus[0]["metadata"]["focus"] == "F1"


def test_generic_jsonl_with_chinese_columns(tmp_path):
    src = tmp_path / "qa.jsonl"
    src.write_text("\n".join(json.dumps({"问题": f"问{i}", "答案": f"答{i}"}, ensure_ascii=False)
                             for i in range(5)), encoding="utf-8")
    counts = convert(src, tmp_path / "out", dev_fraction=0.0)
    _, _, qrels = check_beir(tmp_path / "out")
    assert counts["format"] == "qa" and counts["queries"] == 5 and qrels["dev"] == []


def test_errors(tmp_path):
    src = tmp_path / "qa.csv"
    src.write_text("title,body\na,b\n", encoding="utf-8")
    with pytest.raises(MedSearchError, match=r"qa\.csv: no question column"):
        convert(src, tmp_path / "out")
    with pytest.raises(MedSearchError, match="missing.txt"):
        convert(tmp_path / "missing.txt", tmp_path / "out")
    empty = tmp_path / "empty.txt"
    empty.write_bytes(b"")
    with pytest.raises(MedSearchError, match="empty.txt"):
        convert(empty, tmp_path / "out")
    one = tmp_path / "one.txt"
    one.write_text("only a title line\n", encoding="utf-8")
    with pytest.raises(MedSearchError, match=r"one\.txt: no question/answer pairs"):
        convert(one, tmp_path / "out")
    with pytest.raises(MedSearchError, match="dev_fraction"):
        convert(src, tmp_path / "out", dev_fraction=1.5)
    with pytest.raises(MedSearchError, match="unknown format"):
        convert(src, tmp_path / "out", fmt="bogus")
    bad = tmp_path / "bad.json"
    bad.write_text("{nope", encoding="utf-8")
    with pytest.raises(MedSearchError, match=r"bad\.json: invalid JSON on line 1"):
        convert(bad, tmp_path / "out")


# --- real shared data -----------------------------------------------------------


def test_real_neike(shared_data, tmp_path):
    counts = convert(shared_data / "zh-dialogue-neike" / "neike.txt", tmp_path / "out")
    check_beir(tmp_path / "out")
    assert counts["pairs"] == 4048
    # identical questions merge (4048 blocks hold 3824 distinct questions)
    assert 3700 <= counts["queries"] <= 4048 and counts["docs"] >= 3700


def test_real_pubmedqa(shared_data, tmp_path):
    counts = convert(shared_data / "pubmedqa-dev" / "pqal_dev.json", tmp_path / "out")
    check_beir(tmp_path / "out")
    assert counts["queries"] == 300 and counts["docs"] == 300
    assert counts["dev_queries"] == 60


def test_real_medquad(shared_data, tmp_path):
    counts = convert(shared_data / "medquad-dev", tmp_path / "out")
    check_beir(tmp_path / "out")
    assert counts["queries"] > 1000 and counts["docs"] > 1000
