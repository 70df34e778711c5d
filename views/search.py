"""Search page: one box, example queries per scenario, filters, result cards, whole documents."""

import time
from urllib.parse import urlencode

import streamlit as st

from medsearch.demo import examples
from medsearch.highlight import highlight
from medsearch.i18n import Texts
from medsearch.inert import inert
from medsearch.limits import MAX_QUERY_CHARS
from medsearch.records import MedSearchError
from medsearch.relevance import best_level
from medsearch.rerank import K_FIRST
from views.common import choose, failure, lang, model_label, pick_collection, pick_reranker, relevance_badge, texts

TEXTS = Texts({
    "title": ("Search medical text", "医学文本检索"),
    "intro": ("Ask in Chinese or English; `auto` picks keywords, meaning or both for each query.",
              "用中文或英文提问；`auto` 会为每个查询选择关键词检索、语义检索或两者结合。"),
    "box": ("Question or keywords", "问题或关键词"),
    "placeholder": ("e.g. 孕妇能吃头孢吗？ or How do I recognize a stroke?", "例如：孕妇能吃头孢吗？或 How do I recognize a stroke?"),
    "examples": ("Examples, one click each:", "示例查询，点击即可："),
    "patient_qa": ("Patient Q&A", "患者问答"), "clinical_decision": ("Clinical decision support", "临床决策支持"),
    "literature": ("Literature search", "文献检索"), "knowledge_base": ("Knowledge base", "医学知识库"),
    "retriever": ("Retriever", "检索方式"),
    "auto": ("Auto (recommended)", "自动（推荐）"), "bm25": ("BM25 (keywords)", "BM25（关键词）"),
    "dense": ("Dense (meaning)", "稠密（语义）"), "hybrid": ("Hybrid (RRF)", "混合（RRF）"),
    "results": ("Results", "结果数"), "dense_model": ("Dense model", "稠密模型"),
    "filters": ("Filters", "筛选"),
    "col_department": ("Department", "科室"), "col_lang": ("Language", "语言"), "col_topic": ("Topic", "主题"),
    "col_year": ("Year", "年份"), "col_source": ("Source", "来源"),
    "found": ("{n} results in {ms:.0f} ms", "{n} 条结果，用时 {ms:.0f} 毫秒"),
    "nothing": ("No passage matches. Try other words, another retriever or fewer filters.",
                "没有匹配的段落。换个说法、换一种检索方式或减少筛选条件试试。"),
    "pipeline": ("Pipeline: **{label}** — {reason}", "检索流程：**{label}** — {reason}"),
    "model": ("Dense model: **{model}** — {reason}", "稠密模型：**{model}** — {reason}"),
    "poor": ("Nothing in this collection matches this query well: every result is of low relevance. Try other "
             "words, or check that the collection covers the topic.",
             "本文档集中没有与此查询相符的内容：所有结果的相关度都很低。请换个说法，或确认文档集涵盖这一主题。"),
    "closest": ("Show the closest results anyway", "仍然显示最接近的结果"),
    "levels_judged": ("Relevance levels compare the meaning of the query and of each passage ({model}), with "
                      "thresholds learned from {n} judged queries of this collection.",
                      "相关度等级比较查询与每个段落的含义（{model}），阈值由本文档集的 {n} 条已标注查询学得。"),
    "levels_demo": ("Relevance levels compare the meaning of the query and of each passage ({model}), with "
                    "thresholds measured on the demo collection's judged queries.",
                    "相关度等级比较查询与每个段落的含义（{model}），阈值取自演示文档集已标注查询的测量结果。"),
    "open": ("Open the whole document", "打开全文"),
    "more": ("+{n} more passages from this document", "本文档另有 {n} 段相关内容"),
    "why": ("Why these results", "为什么是这些结果"),
    "back": ("← Back to the results", "← 返回结果"),
    "missing": ("Document '{id}' is not in collection '{name}'.", "文档集“{name}”中没有文档“{id}”。"),
    "error": ("Search failed: {error}", "检索失败：{error}"),
})
RETRIEVERS = ("auto", "bm25", "dense", "hybrid")
t = texts(TEXTS)


def show_document(collection, doc_id: str) -> None:
    """The whole document (opened from a result's link), with its metadata and a way back."""
    doc = collection.documents.get(doc_id)
    if st.button(t("back")):
        del st.query_params["doc"]  # the query (`q`) and language stay: back to the same results
        st.rerun()
    if doc is None:
        st.error(t("missing", id=doc_id, name=collection.name))
        return
    st.header(inert(doc.title or doc.id))
    st.caption(inert(" · ".join([doc.id, doc.source] + [f"{k}: {v}" for k, v in doc.metadata.items()])))
    st.text(doc.text)


def set_query(text: str) -> None:
    st.session_state.query = text


def example_buttons() -> None:
    st.caption(t("examples"))
    for column, (scenario, queries) in zip(st.columns(4), examples().items()):
        column.markdown(f"**{t(scenario)}**")
        for n, text in enumerate(queries):
            column.button(text, key=f"example-{scenario}-{n}", on_click=set_query, args=(text,),
                          width="stretch")


def card_levels(collection, query: str, found: list[list]) -> list[str | None]:
    """Each document's relevance: the best level among its passages on the page."""
    judged = iter(collection.judged(query, [hit for hits in found for hit in hits]))
    return [best_level([next(judged) for _ in hits]) for hits in found]


def result_card(collection, hits: list, query: str, level: str | None) -> None:
    """One document: its best passage and relevance, its other matching passages folded away, and a link to all of it."""
    hit, doc = hits[0], collection.documents[hits[0].doc_id]
    chunk = collection.chunks[hit.chunk_id]
    with st.container(border=True):
        st.markdown(f"**{hit.rank}. {inert(chunk.title or doc.title or doc.id)}**{relevance_badge(level)}")
        meta = [str(doc.metadata[k]) for k in ("department", "topic", "year") if k in doc.metadata]
        st.caption(inert(" · ".join([doc.cited or doc.id] + meta)))
        st.markdown(highlight(chunk.text, query, collection.tokenizer), unsafe_allow_html=True)
        if len(hits) > 1:
            with st.expander(t("more", n=len(hits) - 1)):
                for other in hits[1:]:
                    st.markdown(highlight(collection.chunks[other.chunk_id].text, query, collection.tokenizer),
                                unsafe_allow_html=True)
        link = {"collection": collection.name, "doc": doc.id, "q": query, "lang": lang()}
        st.markdown(f"[{t('open')}](?{urlencode(link)})")


st.title(t("title"))
if "collection" in st.query_params and ("doc" in st.query_params or "last_query" not in st.session_state):
    st.session_state.collection_name = st.query_params["collection"]  # a document link, or a shared search
left, right = st.columns([3, 1])
with right:
    collection = pick_collection()
    if collection is None:
        st.stop()
    kind = st.radio(t("retriever"), RETRIEVERS, format_func=t)
    model = (st.selectbox(t("dense_model"), collection.models, format_func=model_label)
             if len(collection.models) > 1 else None)
    k = st.slider(t("results"), 3, 30, 10)
    rerank = pick_reranker("search")
    facets = collection.facets()
    if facets:
        st.markdown(f"**{t('filters')}**")
    chosen = {col: st.multiselect(t(f"col_{col}") if f"col_{col}" in TEXTS.entries else inert(col), values,
                                  key=f"filter-{collection.name}-{col}", placeholder=choose())
              for col, values in facets.items()}

with left:
    if "doc" in st.query_params:
        show_document(collection, st.query_params["doc"])
        st.stop()
    st.caption(t("intro"))
    # the box forgets its text when another page is shown: bring back this session's query, or a shared link's
    st.session_state.setdefault("query", st.session_state.get("last_query") or st.query_params.get("q", ""))
    query = st.text_input(t("box"), key="query", placeholder=t("placeholder"), max_chars=MAX_QUERY_CHARS)
    st.session_state.last_query = query
    if not query.strip():
        st.query_params.pop("q", None)
        example_buttons()
        st.stop()
    st.query_params.update({"q": query, "collection": collection.name})  # the address shares this search
    try:
        start = time.perf_counter()
        found = collection.search_by_document(query, k, kind, model, filters=chosen,
                                              rerank=rerank.reranker if rerank else None, rerank_k=rerank.k if rerank else K_FIRST)
        levels = card_levels(collection, query, found)
        elapsed = (time.perf_counter() - start) * 1000
    except MedSearchError as exc:
        st.error(t.plain("error", error=failure(exc)))
        st.stop()
    st.caption(t("found", n=len(found), ms=elapsed))
    if rerank:
        st.caption(rerank.caption(collection.reranked(kind, model, rerank.reranker, rerank.k).last_ms))
    with st.expander(t("why")):
        if kind == "auto":
            plan = collection.retriever("auto", model).plan(query)
            st.caption(t("pipeline", label=plan.label(lang()), reason=plan.explain(lang())))
        if model in (None, collection.default_model):
            st.caption(t("model", model=collection.default_model or "-", reason=collection.model_reason(lang())))
        calibration = collection.calibration()
        if calibration:
            st.caption(t(f"levels_{calibration.source}", model=model_label(collection.default_model),
                         n=calibration.queries))
    if not found:
        st.info(t("nothing"))
    elif all(level == "low" for level in levels):
        st.warning(t("poor"))
        with st.expander(t("closest")):
            for hits, level in zip(found, levels):
                result_card(collection, hits, query, level)
    else:
        for hits, level in zip(found, levels):
            result_card(collection, hits, query, level)
    example_buttons()
