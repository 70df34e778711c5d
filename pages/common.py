"""What every page shares: the UI language, cached collections, the collection picker, progress bars."""

from __future__ import annotations

import threading
from collections.abc import Callable
from pathlib import Path

import streamlit as st

from medsearch.collection import Collection, list_collections
from medsearch.demo import DEMO_NAME, ensure_demo
from medsearch.grounding import Passage
from medsearch.i18n import LANGUAGES, Texts
from medsearch.records import MedSearchError
from medsearch.inert import inert
from medsearch.locks import CollectionBusy
from medsearch.progress import Eta

TEXTS = Texts({
    "language": ("Language · 语言", "语言 · Language"),
    "collection": ("Collection", "文档集"),
    "first_start": ("Building the demo collection (first start only)…", "正在构建演示文档集（仅首次启动）…"),
    "choose": ("Choose", "请选择"),
    "source": ("Source: {source} · document {doc_id}", "来源：{source} · 文档 {doc_id}"),
    "none": ("No collection yet: upload documents on the Corpus page.", "还没有文档集：请在“语料”页上传文档。"),
    "busy": ("Collection '{name}' is busy: someone started to {action} it at {since}. Nothing was changed; try again "
             "when that is done.", "文档集“{name}”正忙：有人在 {since} 开始{action}。未做任何改动，请稍后再试。"),
    "build": ("build", "构建"), "append": ("add documents to", "添加文档"), "rebuild": ("rebuild", "重建"),
    "add_model": ("add a model to", "添加模型"), "delete": ("delete", "删除"),
})


def lang() -> str:
    """The session's UI language: the user's choice, else the browser's locale."""
    if "lang" not in st.session_state:
        locale = st.context.locale or ""
        st.session_state.lang = "zh" if locale.lower().startswith("zh") else "en"
    return st.session_state.lang


class PageTexts:
    """A page's catalogue in the session's language.

    `t(key, **values)` is for everything Streamlit renders as Markdown (markdown, captions, messages,
    labels): every value that is not a number is made inert, so names, errors and document text put
    into a sentence show as typed. `t.plain(...)` is for widgets that show plain text (select box
    options, tables, charts).
    """

    def __init__(self, catalogue: Texts) -> None:
        self.catalogue, self.lang = catalogue, lang()

    def __call__(self, key: str, **values: object) -> str:
        return self.plain(key, **{k: v if isinstance(v, (int, float)) else inert(v) for k, v in values.items()})

    def plain(self, key: str, **values: object) -> str:
        return self.catalogue(key, self.lang, **values)


def texts(catalogue: Texts) -> PageTexts:
    """The page's catalogue bound to the session's language."""
    return PageTexts(catalogue)


def _switched() -> None:
    st.session_state.lang = st.session_state.lang_switch


def language_switch() -> None:
    """中文 / English in the sidebar, remembered for the session."""
    current = lang()
    st.sidebar.radio(TEXTS("language", current), list(LANGUAGES), index=list(LANGUAGES).index(current),
                     format_func=LANGUAGES.get, key="lang_switch", on_change=_switched, horizontal=True)


_OPEN: dict[str, Collection] = {}
_OPEN_LOCK = threading.Lock()


def open_collection(name: str, created: str) -> Collection:
    """One Collection (with its loaded indexes and models) per process and name, shared by sessions: the build
    created at `created`, reopened when the folder holds another build, so older builds leave memory."""
    with _OPEN_LOCK:
        cached = _OPEN.get(name)
        if cached is None or cached.manifest["created"] != created or not cached.is_current():
            _OPEN[name] = cached = Collection.open(name)
        return cached


def model_label(spec: str | None) -> str:
    """A dense model as people call it: a fine-tuned model's folder name rather than its whole path."""
    return Path(spec).name if spec and ("/" in spec or "\\" in spec) and Path(spec).is_dir() else spec or "-"


def choose() -> str:
    """The placeholder of an empty multiselect, in the session's language."""
    return TEXTS("choose", lang())


def passage_card(passage: Passage, marks: tuple[str, ...] = (), cited: bool = False, note: str = ""):
    """A numbered passage ([n] when an answer cites it, with an anchor its [n] links to), its title,
    source, marks and plain text; returns the bordered container so a page can add buttons to it."""
    if cited:
        st.html(f'<span id="passage-{passage.n}"></span>')
    number = inert(f"[{passage.n}]" if cited else f"{passage.n}.")
    box = st.container(border=True)
    with box:
        st.markdown(f"**{number} {inert(passage.title or passage.doc_id)}**{note}")
        st.caption(texts(TEXTS)("source", source=passage.source or "-", doc_id=passage.doc_id))
        if marks:
            st.caption(" · ".join(marks))
        st.text(passage.text)
    return box


def failure(exc: MedSearchError) -> str:
    """A core error for a message box: a busy collection in the UI language, anything else inert as it is."""
    if isinstance(exc, CollectionBusy):
        t = texts(TEXTS)
        return t("busy", name=exc.name, action=t.plain(exc.action), since=exc.since)
    return inert(exc)


def progress_bar(text: str) -> tuple[Callable[[str, int, int], None], Callable[[], None]]:
    """A Streamlit progress bar with an ETA, as a (stage, done, total) callback and a `clear`."""
    bar = st.progress(0.0, text=text)
    eta = Eta(lang())
    return (lambda stage, done, total: bar.progress(min(done / max(total, 1), 1.0), text=eta(stage, done, total)),
            bar.empty)


def collections() -> dict[str, str]:
    """{name: build time} of every collection, demo first; builds the demo on a fresh machine."""
    t = texts(TEXTS)
    if not list_collections():
        update, clear = progress_bar(t("first_start"))
        ensure_demo(progress=update)
        clear()
    found = {c.name: c.manifest["created"] for c in list_collections()}
    return dict(sorted(found.items(), key=lambda item: (item[0] != DEMO_NAME, item[0])))


def pick_collection(where=st) -> Collection | None:
    """A collection picker shared by the pages (the choice follows the user from page to page)."""
    t = texts(TEXTS)
    found = collections()
    if not found:
        where.info(t("none"))
        return None
    names = list(found)
    current = st.session_state.get("collection_name")
    name = where.selectbox(t("collection"), names, index=names.index(current) if current in names else 0)
    st.session_state.collection_name = name
    return open_collection(name, found[name])
