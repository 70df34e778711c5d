"""MedMCQA files as documents, as a BEIR evaluation set and as training pairs, in both numberings of `cop`."""

import io
import json
import re

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from medsearch.collection import BuildOptions, Collection
from medsearch.convert import convert
from medsearch.i18n import FILE_ERRORS
from medsearch.ingest import read_documents, table_columns
from medsearch.ingest.common import IngestError
from medsearch.triplets import pairs_from_file, pairs_from_path, save_triplets

QUESTIONS = [  # (question, options a-d, index of the correct one, explanation, subject, topic)
    ("Drug of choice for absence seizures?", ("Phenytoin", "Ethosuximide", "Carbamazepine", "Phenobarbitone"), 1,
     "Ethosuximide blocks T-type calcium channels in the thalamus.", "Pharmacology", "Antiepileptics"),
    ("Most common site of carcinoid tumour in the gut?", ("Appendix", "Rectum", "Stomach", "Colon"), 0,
     None, "Pathology", None),
    ("Vitamin deficient in scurvy?", ("Vitamin A", "Vitamin D", "Vitamin K", "Vitamin C"), 3,
     "", "Biochemistry", "Vitamins"),
]


def records(first: int, answered: bool = True) -> list[dict]:
    """MedMCQA records with `cop` numbered from `first` (0: Hugging Face, 1: the original release)."""
    rows = []
    for n, (question, options, correct, explanation, subject, topic) in enumerate(QUESTIONS, start=1):
        rows.append({"question": question, "exp": explanation, "cop": correct + first,
                     **{f"op{letter}": option for letter, option in zip("abcd", options)},
                     "subject_name": subject, "topic_name": topic, "id": f"q{n}", "choice_type": "single"})
    if not answered:
        for row in rows:
            row.pop("cop")
    return rows


def jsonl(rows: list[dict]) -> bytes:
    return "".join(json.dumps(r) + "\n" for r in rows).encode()


def parquet(rows: list[dict]) -> bytes:
    out = io.BytesIO()
    pq.write_table(pa.Table.from_pylist(rows), out)
    return out.getvalue()


def correct_options(docs) -> list[str]:
    return [d.text.split("\n\n")[0] for d in docs]


@pytest.mark.parametrize("first", [0, 1])
def test_both_numberings_of_cop_give_the_right_options(first):
    for data, name in ((jsonl(records(first)), "train.json"), (parquet(records(first)), "train.parquet")):
        docs = read_documents(data=data, name=name)
        assert correct_options(docs) == ["Ethosuximide", "Appendix", "Vitamin C"], (first, name)


def test_a_question_becomes_one_document_with_filterable_metadata(tmp_path):
    docs = read_documents(data=jsonl(records(1)), name="dev.json")  # the original release: JSON Lines named .json
    first, no_explanation, empty_explanation = docs
    assert (first.id, first.title, first.source) == ("q1", QUESTIONS[0][0], "MedMCQA")
    assert first.text == "Ethosuximide\n\nEthosuximide blocks T-type calcium channels in the thalamus."
    assert first.metadata == {"subject": "Pharmacology", "topic": "Antiepileptics", "choice_type": "single",
                              "file": "dev.json"}
    assert (no_explanation.text, empty_explanation.text) == ("Appendix", "Vitamin C")  # null and "" explanations
    assert "topic" not in no_explanation.metadata
    collection = Collection.create("mcqa", docs, BuildOptions(models=[]), home=tmp_path)
    hits = collection.search("vitamin", retriever="bm25", filters={"subject": "Biochemistry"})
    assert [h.doc_id for h in hits] == ["q3"]


def test_numbering_is_read_from_the_values_else_from_the_container():
    zero_based_test_split = records(0) + [dict(records(0)[0], id="t1", cop=-1)]  # Hugging Face's test rows: -1
    assert len(read_documents(data=jsonl(zero_based_test_split), name="hf.jsonl")) == 3
    sample = [records(1)[0]]  # cop 2 alone: b in the original numbering, c in Hugging Face's
    assert correct_options(read_documents(data=jsonl(sample), name="s.jsonl")) == ["Ethosuximide"]
    assert correct_options(read_documents(data=parquet(sample), name="s.parquet")) == ["Carbamazepine"]
    letters = [dict(r, cop="abcd"[c]) for r, c in zip(records(0), (1, 0, 3))]
    assert correct_options(read_documents(data=jsonl(letters), name="l.jsonl")) == ["Ethosuximide", "Appendix", "Vitamin C"]


def test_detected_by_content_or_named():
    rows = records(1)
    as_list = json.dumps(rows, indent=2).encode()  # a JSON list, pretty-printed
    assert len(read_documents(data=as_list, name="medmcqa.json")) == 3
    assert len(read_documents(data=jsonl(rows), name="notes.txt", fmt="medmcqa")) == 3
    assert len(read_documents(data=parquet(rows), name="blob")) == 3  # Parquet by its magic bytes
    assert table_columns("train.json", jsonl(rows)) is None  # a fixed format: no column mapping
    chosen = read_documents(data=jsonl(rows), name="train.jsonl", fmt="jsonl")
    assert chosen[0].source == "MedMCQA"


@pytest.mark.parametrize("rows,code,message", [
    ([dict(records(1)[0], cop=7)], "mcqa_cop", "record 1: the correct option 'cop' is 7"),
    ([dict(records(1)[0], cop="maybe")], "mcqa_cop", "record 1: the correct option 'cop' is maybe"),
    ([records(0)[1], dict(records(1)[2], cop=4)], "mcqa_mixed", "counts from 0 in record 1 but is 4 in record 2"),
    ([records(1)[0], dict(records(1)[1], question=" ")], "mcqa_fields", "record 2 needs a question"),
    ([dict(records(1)[0], opb=None)], "mcqa_fields", "record 1 needs a question and the text of its correct option"),
    (records(1, answered=False), "mcqa_no_answers", "no question has a correct option"),
])
def test_bad_records_are_one_clear_error_in_both_languages(rows, code, message):
    with pytest.raises(IngestError, match=re.escape(message)) as caught:
        read_documents(data=jsonl(rows), name="bad.jsonl")
    error = caught.value
    assert error.code == code and str(error).startswith("bad.jsonl: ") and "\n" not in str(error)
    assert re.search(r"[\u4e00-\u9fff]", FILE_ERRORS(code, "zh", **error.params))


def test_not_medmcqa_when_named_so():
    with pytest.raises(IngestError, match=r"notes.jsonl: not a MedMCQA file"):
        read_documents(data=b'{"question": "q", "answer": "a"}\n', name="notes.jsonl", fmt="medmcqa")


def test_convert_gives_each_question_its_answer_as_the_relevant_document(tmp_path):
    src = tmp_path / "train.json"
    src.write_bytes(jsonl(records(1)))
    counts = convert(src, tmp_path / "beir", dev_fraction=0.0)
    assert (counts["format"], counts["docs"], counts["queries"], counts["test_qrels"]) == ("medmcqa", 3, 3, 3)
    corpus = [json.loads(line) for line in (tmp_path / "beir" / "corpus.jsonl").read_text().splitlines()]
    assert corpus[0]["title"] == "" and corpus[0]["text"].startswith("Ethosuximide")  # the question is the query
    assert corpus[0]["metadata"] == {"medmcqa_id": "q1", "subject": "Pharmacology", "topic": "Antiepileptics",
                                     "choice_type": "single"}


def test_training_pairs_from_every_container(tmp_path):
    expected = [(q[0], q[1][q[2]]) for q in QUESTIONS]
    assert [(p["query"], p["positive"].split("\n\n")[0]) for p in pairs_from_file(jsonl(records(1)), "train.json")] == expected
    assert [(p["query"], p["positive"].split("\n\n")[0]) for p in pairs_from_file(parquet(records(0)), "t.parquet")] == expected
    from medsearch.ingest.parquet import save_dataset

    rows = records(0)
    save_dataset(rows, list(rows[0]), tmp_path / "hf")  # a datasets folder of MedMCQA (cop as text, 0-3)
    pairs = pairs_from_path(tmp_path / "hf")
    assert [(p["query"], p["positive"].split("\n\n")[0]) for p in pairs] == expected
    save_triplets(pairs, tmp_path / "pairs.parquet")
    assert pq.read_table(tmp_path / "pairs.parquet").column_names == ["anchor", "positive"]
