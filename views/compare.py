"""Compare page: two or three search pipelines (retriever, dense model, reranker) side by side, rank by rank, with
metrics and a per-query chart."""


import plotly.graph_objects as go
import streamlit as st

from medsearch.compare import (
    KINDS,
    MODEL_KINDS,
    Comparison,
    Pipeline,
    SamePipelines,
    compare,
    head_to_head,
    judged,
    per_query,
    resolved,
    training_overlap,
)
from medsearch.highlight import highlight
from medsearch.i18n import Texts
from medsearch.inert import inert
from medsearch.limits import MAX_QUERY_CHARS
from medsearch.records import MedSearchError
from medsearch.rerank import K_FIRST
from views.common import RerankChoice, choose, failure, lang, model_label, pick_collection, pick_reranker, texts

TEXTS = Texts({
    "title": ("Search pipelines, side by side", "检索流程并排对比"),
    "intro": ("The same query through two or three pipelines you choose: a retriever, its dense model, and optionally "
              "a reranker. Green: found by every column; amber: not by all. ▲n / ▼n: ranked n places higher / lower "
              "than in that column.",
              "同一个查询分别经过你选择的两到三个检索流程：检索方式、它的稠密模型，以及可选的重排序模型。"
              "绿色：每一列都找到；琥珀色：并非每列都找到。▲n / ▼n：比那一列排名高 / 低 n 位。"),
    "query": ("Query", "查询"), "placeholder": ("血压升高应该怎么办？", "血压升高应该怎么办？"),
    "judged": ("…or a judged query of this collection", "……或选择本文档集已标注的查询"),
    "k": ("Results per column", "每列结果数"), "columns": ("Columns", "列数"),
    "column": ("Column {n}", "第 {n} 列"), "kind": ("Retriever", "检索方式"), "model": ("Dense model", "稠密模型"),
    "bm25": ("BM25 (keywords)", "BM25（关键词）"), "tfidf": ("TF-IDF (keywords)", "TF-IDF（关键词）"),
    "dense": ("Dense: {model}", "稠密：{model}"), "hybrid": ("Hybrid (RRF): {model}", "混合（RRF）：{model}"),
    "auto": ("Auto: {model}", "自动：{model}"),
    "kind_dense": ("Dense", "稠密"), "kind_hybrid": ("Hybrid (RRF)", "混合（RRF）"), "kind_auto": ("Auto", "自动"),
    "reranked": ("{first} + rerank ({reranker}, top {k})", "{first} + 重排序（{reranker}，前 {k} 条）"),
    "same": ("Column {n} is the same pipeline as an earlier column: change its retriever, model or reranker.",
             "第 {n} 列与前面某一列的检索流程完全相同：请更换它的检索方式、模型或重排序模型。"),
    "no_dense": ("This collection has no dense index: add a model on the Corpus page to compare.",
                 "该文档集没有稠密索引：请在“语料”页添加模型后再对比。"),
    "both": ("In both top {k}", "两边前 {k} 都有"), "shared": ("In all top {k}", "各列前 {k} 都有"), "only": ("Only {name}", "仅 {name}"),
    "not_found": ("{name}: not in top 100", "{name}：前 100 之外"),
    "relevant": ("Relevant documents (from the collection's judgements; mark or unmark to judge yourself)",
                 "相关文档（来自文档集的标注；可自行勾选或取消）"),
    "relevant_mark": ("relevant", "相关"),
    "metrics_hint": ("Mark relevant documents above to see nDCG@10, MRR@10 and Recall@10 for each column.",
                     "在上方标出相关文档，即可看到每一列的 nDCG@10、MRR@10 和 Recall@10。"),
    "set": ("Whole query set", "整个查询集"),
    "set_intro": ("nDCG@10 of two of the columns on each of the {n} judged queries of this collection.",
                  "在本文档集全部 {n} 条已标注查询上，其中两列各自的 nDCG@10。"),
    "pair": ("Columns to chart", "绘图对比的两列"),
    "run_set": ("Run all {n} judged queries", "运行全部 {n} 条已标注查询"),
    "no_set": ("This collection has no judged queries (qrels): the per-query chart needs them.",
               "该文档集没有标注查询（qrels），无法绘制逐查询对比图。"),
    "diff": ("nDCG@10, second − first", "nDCG@10，后者 − 前者"),
    "wins": ("{b} better on {wins} queries, {a} better on {losses}, tied on {ties}.",
             "{b} 在 {wins} 条查询上更好，{a} 在 {losses} 条上更好，{ties} 条持平。"),
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
DEFAULT_KINDS = ("bm25", "dense", "hybrid")  # BM25 | dense as ever; a third column starts as hybrid


def title(pipeline: Pipeline) -> str:
    """A column's name as plain text (made inert where it is rendered): its retriever, model and reranker."""
    first = t.plain(pipeline.kind, model=model_label(pipeline.model))
    return (t.plain("reranked", first=first, reranker=model_label(pipeline.rerank), k=pipeline.rerank_k)
            if pipeline.rerank else first)


def pick_pipeline(n: int, collection, where) -> tuple[Pipeline, RerankChoice | None]:
    """Column n's retriever, dense model (for a kind that uses one) and reranker. Keys are per column: a column
    that goes away takes its choices with it (Streamlit forgets widgets it no longer draws)."""
    where.markdown(f"**{t('column', n=n + 1)}**")
    kind = where.selectbox(t("kind"), KINDS, index=KINDS.index(DEFAULT_KINDS[n]), key=f"compare-{n}-kind",
                           format_func=lambda k: t.plain(f"kind_{k}" if k in MODEL_KINDS else k))
    model = collection.default_model
    if kind in MODEL_KINDS and len(collection.models) > 1:
        models = collection.models
        model = where.selectbox(t("model"), models, index=models.index(model) if model in models else 0,
                                format_func=model_label, key=f"compare-{n}-model-{collection.name}")
    rerank = pick_reranker(f"compare-{n}", where)
    return Pipeline(kind, model, rerank.reranker.spec if rerank else None, rerank.k if rerank else K_FIRST), rerank


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


def show_columns(result: Comparison, collection, names: dict[str, str], reranks: dict[str, RerankChoice]) -> None:
    first = next(iter(result.metrics.values()), None)
    for column, (key, entries) in zip(st.columns(len(result.columns)), result.columns.items()):
        column.subheader(inert(names[key]))
        if key in reranks:
            column.caption(reranks[key].caption(result.took_ms[key]))
        if result.metrics:
            scores = result.metrics[key]
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


def query_set(collection, pipelines: list[Pipeline], names: dict[str, str], overlaps: dict) -> None:
    st.divider()
    st.subheader(t("set"))
    eval_set = collection.eval_set
    n = len(eval_set.queries) if eval_set else 0
    if not n:
        st.info(t("no_set"))
        return
    st.caption(t("set_intro", n=n))
    pairs = [(0, 1), (0, 2), (1, 2)][:1 if len(pipelines) == 2 else 3]
    first, second = (pairs[0] if len(pairs) == 1 else st.selectbox(  # key per column count: none left behind
        t("pair"), pairs, key=f"compare-pair-{len(pipelines)}",
        format_func=lambda p: f"{names[pipelines[p[0]].key]} ↔ {names[pipelines[p[1]].key]}"))
    a, b = pipelines[first], pipelines[second]
    for model in dict.fromkeys(p.model for p in (a, b) if p.model in overlaps):
        overlap = overlaps[model]
        if not overlap.known:
            st.info(t("trained_unknown", model=model_label(model)))
        elif overlap.seen:
            st.warning(t("trained_set", k=len(overlap.seen), n=overlap.compared, model=model_label(model)))
    key = f"set-{collection.name}-{collection.build_id}-{a.key}-{b.key}"
    if st.button(t("run_set", n=n)):
        st.session_state[key] = per_query(collection, (a, b))
    if not st.session_state.get(key):
        return
    duel = head_to_head(st.session_state[key], a, b)
    chart = go.Figure(go.Bar(
        x=[r["qid"] for r in duel.rows], y=duel.diffs, marker_color=["#2e7d32" if d > 0 else "#c62828" for d in duel.diffs],
        customdata=[[r["query"], r[a.key], r[b.key], names[a.key], names[b.key]] for r in duel.rows],
        hovertemplate="%{customdata[0]}<br>%{customdata[3]} %{customdata[1]:.3f} → %{customdata[4]} "
                      "%{customdata[2]:.3f}<extra></extra>"))
    chart.update_layout(yaxis_title=t.plain("diff"), height=360, margin=dict(l=10, r=10, t=10, b=10))
    st.plotly_chart(chart, width="stretch")
    st.markdown(t("wins", a=names[a.key], b=names[b.key], wins=duel.wins, losses=duel.losses, ties=duel.ties))
    left, right = st.columns(2)
    left.metric(f"{t('mean')} · {inert(names[a.key])}", f"{duel.means[0]:.3f}")
    right.metric(f"{t('mean')} · {inert(names[b.key])}", f"{duel.means[1]:.3f}", f"{duel.means[1] - duel.means[0]:+.3f}")


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
    k = st.slider(t("k"), 3, 20, 10)
    count = st.radio(t("columns"), [2, 3], horizontal=True, key="compare-columns")
with top:
    if "compare_query" not in st.session_state:
        st.session_state.compare_query = "血压升高应该怎么办？" if lang() == "zh" else "How do I recognize a stroke?"
    query = st.text_input(t("query"), key="compare_query", placeholder=t("placeholder"), max_chars=MAX_QUERY_CHARS)
    if collection.eval_set:
        st.selectbox(t("judged"), list(collection.eval_set.queries.values()), index=None, key="compare_judged",
                     on_change=set_query, placeholder=choose())
chosen = [pick_pipeline(n, collection, where) for n, where in enumerate(st.columns(count))]
try:
    pipelines = resolved(collection, [p for p, _ in chosen])
except SamePipelines as exc:
    st.error(t("same", n=exc.index + 1))
    st.stop()
names = {p.key: title(p) for p in pipelines}
reranks = {p.key: rerank for p, (_, rerank) in zip(pipelines, chosen) if rerank}
overlaps = {m: o for m in dict.fromkeys(p.model for p in pipelines if p.model)  # fine-tuned models' training queries
            if (o := training_overlap(collection, m))}
if query.strip():
    try:
        result = compare(collection, query, pipelines, k)
        result.judge(relevance(collection, result, query))
    except MedSearchError as exc:
        st.error(t.plain("error", error=failure(exc)))
        st.stop()
    overlap = result.overlap()
    cells = st.columns(len(pipelines) + 1)
    cells[0].metric(t("both" if len(pipelines) == 2 else "shared", k=k), overlap["shared"])
    for cell, pipeline in zip(cells[1:], pipelines):
        cell.metric(t("only", name=names[pipeline.key]), overlap[f"only {pipeline.key}"])
    if not result.metrics:
        st.caption(t("metrics_hint"))
    for model, trained in overlaps.items():
        if trained.includes(query):
            st.warning(t("trained_query", model=model_label(model)))
    show_columns(result, collection, names, reranks)
query_set(collection, pipelines, names, overlaps)
