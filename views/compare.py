"""Compare page: BM25 and a dense model side by side, rank by rank, with metrics and a per-query chart."""


import plotly.graph_objects as go
import streamlit as st

from medsearch.compare import Comparison, compare, judged, per_query, training_overlap
from medsearch.highlight import highlight
from medsearch.i18n import Texts
from medsearch.inert import inert
from medsearch.limits import MAX_QUERY_CHARS
from medsearch.records import MedSearchError
from medsearch.rerank import K_FIRST
from views.common import choose, failure, lang, model_label, pick_collection, pick_reranker, texts

TEXTS = Texts({
    "title": ("BM25 vs dense, side by side", "BM25 与稠密检索对比"),
    "intro": ("The same query through keyword search (BM25) and a dense model. Green: found by both; amber: "
              "found by one side only. ▲n / ▼n: ranked n places higher / lower than on the other side.",
              "同一个查询分别用关键词检索（BM25）和稠密模型检索。绿色：两边都找到；琥珀色：只有一边找到。"
              "▲n / ▼n：比另一边排名高 / 低 n 位。"),
    "query": ("Query", "查询"), "placeholder": ("血压升高应该怎么办？", "血压升高应该怎么办？"),
    "judged": ("…or a judged query of this collection", "……或选择本文档集已标注的查询"),
    "model": ("Dense model", "稠密模型"), "k": ("Results per side", "每边结果数"),
    "third": ("Third column", "第三列"), "no_third": ("none", "不显示"),
    "bm25": ("BM25 (keywords)", "BM25（关键词）"), "dense": ("Dense: {model}", "稠密：{model}"),
    "auto": ("Auto", "自动"), "hybrid": ("Hybrid (RRF)", "混合（RRF）"),
    "rerank_first": ("Rerank the results of", "重新排序哪一列的结果"),
    "reranked": ("{first} + rerank", "{first} + 重排序"),
    "no_dense": ("This collection has no dense index: add a model on the Corpus page to compare.",
                 "该文档集没有稠密索引：请在“语料”页添加模型后再对比。"),
    "shared": ("In both top {k}", "两边前 {k} 都有"), "only": ("Only {name}", "仅 {name}"),
    "not_found": ("{name}: not in top 100", "{name}：前 100 之外"),
    "relevant": ("Relevant documents (from the collection's judgements; mark or unmark to judge yourself)",
                 "相关文档（来自文档集的标注；可自行勾选或取消）"),
    "relevant_mark": ("relevant", "相关"),
    "metrics_hint": ("Mark relevant documents above to see nDCG@10, MRR@10 and Recall@10 for each side.",
                     "在上方标出相关文档，即可看到每一边的 nDCG@10、MRR@10 和 Recall@10。"),
    "set": ("Whole query set", "整个查询集"),
    "set_intro": ("nDCG@10 of both sides on each of the {n} judged queries of this collection.",
                  "在本文档集全部 {n} 条已标注查询上，两边各自的 nDCG@10。"),
    "run_set": ("Run all {n} judged queries", "运行全部 {n} 条已标注查询"),
    "no_set": ("This collection has no judged queries (qrels): the per-query chart needs them.",
               "该文档集没有标注查询（qrels），无法绘制逐查询对比图。"),
    "diff": ("nDCG@10, dense − BM25", "nDCG@10，稠密 − BM25"), "dense_short": ("dense", "稠密"),
    "wins": ("Dense better on {wins} queries, BM25 better on {losses}, tied on {ties}.",
             "稠密检索在 {wins} 条查询上更好，BM25 在 {losses} 条上更好，{ties} 条持平。"),
    "mean": ("Mean nDCG@10", "平均 nDCG@10"),
    "error": ("Comparison failed: {error}", "对比失败：{error}"),
    "trained_set": ("{k} of the {n} compared queries were in {model}'s training data: its scores on them are "
                    "optimistic. Judge it on queries it has not seen (the Fine-tune page's held-out ones).",
                    "{n} 条对比查询中有 {k} 条在 {model} 的训练数据中：它在这些查询上的得分偏乐观。"
                    "请用它没见过的查询评判（见“微调”页的留出查询）。"),
    "trained_query": ("This query was in {model}'s training data: its score on it is optimistic.",
                      "此查询在 {model} 的训练数据中：它在此查询上的得分偏乐观。"),
    "trained_unknown": ("{model} is fine-tuned, but its training data could not be found (trained from a file, or "
                        "its training run deleted): if it was trained on these queries, its scores are optimistic.",
                        "{model} 是微调模型，但找不到它的训练数据（由文件训练，或训练记录已删除）："
                        "如果它用这些查询训练过，得分会偏乐观。"),
})
STYLE = """<style>
.ms-card {border-radius: 8px; padding: 8px 10px; margin-bottom: 8px; border-left: 6px solid;}
.ms-both {background: #e8f5e9; border-color: #2e7d32;} .ms-only {background: #fff4e0; border-color: #ef8f00;}
.ms-head {font-weight: 600;} .ms-rank {display: inline-block; min-width: 1.6em; color: #555;}
.ms-meta {font-size: 0.82em; color: #444; margin: 2px 0;} .ms-text {font-size: 0.88em; color: #222;}
.ms-rel {background: #1565c0; color: white; border-radius: 4px; padding: 0 5px; font-size: 0.78em; margin-left: 6px;}
.ms-up {color: #2e7d32; font-weight: 600;} .ms-down {color: #c62828; font-weight: 600;}
</style>"""
t = texts(TEXTS)


def column_title(kind: str, model: str) -> str:
    """A column's name as plain text (made inert where it is rendered); `<first>+rerank`: that column reranked."""
    first, _, reranked = kind.partition("+")
    if reranked:
        return t.plain("reranked", first=column_title(first, model))
    return t.plain("dense", model=model_label(model)) if kind == "dense" else t.plain(kind)


def set_query() -> None:
    st.session_state.compare_query = st.session_state.compare_judged


def card(entry, collection, query: str, names: dict[str, str]) -> str:
    """One result as HTML: every piece of document text is inert."""
    chunk, doc = collection.chunks[entry.hit.chunk_id], collection.documents[entry.hit.doc_id]
    where = []
    for other, rank in entry.others.items():
        if rank is None:
            where.append(t("not_found", name=names[other]))
            continue
        shift = rank - entry.hit.rank
        arrow = f' <span class="ms-up">▲{shift}</span>' if shift > 0 else (
            f' <span class="ms-down">▼{-shift}</span>' if shift < 0 else "")
        where.append(f"{inert(names[other])} #{rank}{arrow}")
    snippet = chunk.text if len(chunk.text) <= 220 else chunk.text[:220] + "…"
    badge = f'<span class="ms-rel">✓ {t("relevant_mark")}</span>' if entry.grade > 0 else ""
    return (f'<div class="ms-card {"ms-both" if entry.in_all else "ms-only"}">'
            f'<div class="ms-head"><span class="ms-rank">{entry.hit.rank}.</span>'
            f'{inert(chunk.title or doc.title or doc.id)}{badge}</div>'
            f'<div class="ms-meta">{" · ".join(where)}</div>'
            f'<div class="ms-text">{highlight(snippet, query, collection.tokenizer)}</div></div>')


def show_columns(result: Comparison, collection, names: dict[str, str]) -> None:
    first = next(iter(result.metrics.values()), None)
    for column, (kind, entries) in zip(st.columns(len(result.columns)), result.columns.items()):
        column.subheader(inert(names[kind]))
        if result.metrics:
            scores = result.metrics[kind]
            delta = None if scores is first else f"{scores['ndcg@10'] - first['ndcg@10']:+.3f}"
            column.metric("nDCG@10", f"{scores['ndcg@10']:.3f}", delta)
            column.caption(f"MRR@10 {scores['mrr@10']:.3f} · Recall@10 {scores['recall@10']:.3f}")
        column.markdown("".join(card(e, collection, result.query, names) for e in entries), unsafe_allow_html=True)


def relevance(collection, result: Comparison, query: str) -> dict[str, int]:
    """The collection's grades for the query, edited by the user's marks on the shown documents."""
    grades = judged(collection, query)
    shown = list(dict.fromkeys(e.hit.doc_id for entries in result.columns.values() for e in entries))
    titles = {d: collection.documents[d].title or d for d in shown}
    marked = st.multiselect(t("relevant"), shown, default=[d for d in shown if grades.get(d, 0) > 0], placeholder=choose(),
                            format_func=lambda d: f"{titles[d]} ({d})", key=f"rel-{collection.name}-{query}")
    return {d: g for d, g in grades.items() if d not in shown and g > 0} | {d: grades.get(d) or 1 for d in marked}


def query_set(collection, model: str, overlap) -> None:
    st.divider()
    st.subheader(t("set"))
    eval_set = collection.eval_set
    n = len(eval_set.queries) if eval_set else 0
    if not n:
        st.info(t("no_set"))
        return
    st.caption(t("set_intro", n=n))
    if overlap and not overlap.known:
        st.info(t("trained_unknown", model=model_label(model)))
    elif overlap and overlap.seen:
        st.warning(t("trained_set", k=len(overlap.seen), n=overlap.compared, model=model_label(model)))
    key = f"set-{collection.name}-{collection.build_id}-{model}"
    if st.button(t("run_set", n=n)):
        st.session_state[key] = per_query(collection, ("bm25", "dense"), model)
    rows = st.session_state.get(key)
    if not rows:
        return
    rows = sorted(rows, key=lambda r: r["dense"] - r["bm25"])
    diffs = [r["dense"] - r["bm25"] for r in rows]
    wins, losses = sum(d > 0.001 for d in diffs), sum(d < -0.001 for d in diffs)
    chart = go.Figure(go.Bar(
        x=[r["qid"] for r in rows], y=diffs, marker_color=["#2e7d32" if d > 0 else "#c62828" for d in diffs],
        customdata=[[r["query"], r["bm25"], r["dense"]] for r in rows],
        hovertemplate=f"%{{customdata[0]}}<br>BM25 %{{customdata[1]:.3f}} → {t.plain('dense_short')} "
                      "%{customdata[2]:.3f}<extra></extra>"))
    chart.update_layout(yaxis_title=t("diff"), height=360, margin=dict(l=10, r=10, t=10, b=10))
    st.plotly_chart(chart, width="stretch")
    st.markdown(t("wins", wins=wins, losses=losses, ties=len(rows) - wins - losses))
    left, right = st.columns(2)
    left.metric(f"{t('mean')} · BM25", f"{sum(r['bm25'] for r in rows) / len(rows):.3f}")
    right.metric(f"{t('mean')} · {model_label(model)}", f"{sum(r['dense'] for r in rows) / len(rows):.3f}",
                 f"{sum(diffs) / len(rows):+.3f}")


st.markdown(STYLE, unsafe_allow_html=True)
st.title(t("title"))
st.caption(t("intro"))
top, side = st.columns([3, 1])
with side:
    collection = pick_collection()
    if collection is None:
        st.stop()
if not collection.models:
    st.info(t("no_dense"))
    st.stop()
with side:
    model = (st.selectbox(t("model"), collection.models, format_func=model_label)
             if len(collection.models) > 1 else collection.default_model)
    k = st.slider(t("k"), 3, 20, 10)
    third = st.radio(t("third"), ["none", "auto", "hybrid"], format_func=lambda o: t("no_third") if o == "none" else t(o),
                     horizontal=True, key="third")
    kinds = ("bm25", "dense") + (() if third == "none" else (third,))
    rerank = pick_reranker("compare")
    if rerank:
        reranked = st.radio(t("rerank_first"), kinds, format_func=lambda o: inert(column_title(o, model)),
                            key=f"rerank_first-{third}")  # a choice per set of columns: a gone column is never kept
        kinds += (f"{reranked}+rerank",)
with top:
    if "compare_query" not in st.session_state:
        st.session_state.compare_query = "血压升高应该怎么办？" if lang() == "zh" else "How do I recognize a stroke?"
    query = st.text_input(t("query"), key="compare_query", placeholder=t("placeholder"), max_chars=MAX_QUERY_CHARS)
    if collection.eval_set:
        st.selectbox(t("judged"), list(collection.eval_set.queries.values()), index=None, key="compare_judged",
                     on_change=set_query)
names = {kind: column_title(kind, model) for kind in ("bm25", "dense", "auto", "hybrid", *kinds)}
trained = training_overlap(collection, model)  # a fine-tuned model's scores on its own training queries flatter it
if query.strip():
    try:
        result = compare(collection, query, kinds, k, model, rerank.reranker if rerank else None,
                         rerank.k if rerank else K_FIRST)
        result.judge(relevance(collection, result, query))
    except MedSearchError as exc:
        st.error(t.plain("error", error=failure(exc)))
        st.stop()
    if rerank:
        first = kinds[-1].partition("+")[0]
        st.caption(rerank.caption(collection.reranked(first, model, rerank.reranker, rerank.k).last_ms))
    overlap = result.overlap()
    cells = st.columns(len(kinds) + 1)
    cells[0].metric(t("shared", k=k), overlap["shared"])
    for cell, kind in zip(cells[1:], kinds):
        cell.metric(t("only", name=names[kind]), overlap[f"only {kind}"])
    if not result.metrics:
        st.caption(t("metrics_hint"))
    if trained and trained.includes(query):
        st.warning(t("trained_query", model=model_label(model)))
    show_columns(result, collection, names)
query_set(collection, model, trained)
