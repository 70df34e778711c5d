"""Annotate page: label pooled candidates positive / negative / skip, mine triplets, import and export them."""

import pandas as pd
import streamlit as st

from medsearch.i18n import Texts
from medsearch.inert import inert
from medsearch.limits import MAX_QUERY_CHARS
from medsearch.records import MedSearchError
from medsearch.store import Store
from medsearch.triplets import (
    MiningOptions,
    candidates,
    mine,
    near_positives,
    next_candidate,
    pairs_from_eval,
    pairs_from_file,
    read_queries,
    read_triplets,
    suggested_negatives,
    write_triplets,
)
from views.common import failure, guarded, local_time, pick_collection, progress_bar, require, signin_configured, texts

TEXTS = Texts({
    "title": ("Annotate triplets", "标注三元组"),
    "intro": ("Mark which passages answer the query. Candidates come from BM25 and the dense model, pooled and "
              "shuffled, without scores, so neither side is favoured.",
              "标出哪些段落能回答查询。候选来自 BM25 和稠密模型，合并后打乱顺序且不显示分数，避免偏向任何一方。"),
    "annotator": ("Your name (annotator)", "你的名字（标注人）"),
    "need_name": ("Enter your name to start labeling.", "请先输入名字再开始标注。"),
    "query": ("Query", "查询"),
    "list": ("…or upload a query list (TXT one per line, CSV/JSONL with a query column)",
             "……或上传查询列表（TXT 每行一条，或带 query 列的 CSV/JSONL）"),
    "next": ("Next unlabeled query from the list", "列表中下一条未标注的查询"),
    "list_done": ("Every query of the list has labels.", "列表中的查询都已标注。"),
    "list_progress": ("Query list: {done} of {total} queries labeled", "查询列表：已标注 {done} / {total} 条"),
    "progress": ("This query: {done} of {total} candidates labeled", "本查询：已标注 {done} / {total} 个候选"),
    "position": ("Candidate {n} of {total}", "第 {n} / {total} 个候选"),
    "positive": ("✓ Positive", "✓ 正例"), "negative": ("✗ Negative", "✗ 负例"), "skip": ("Skip", "跳过"),
    "previous": ("← Previous", "← 上一个"), "forward": ("Next →", "下一个 →"),
    "undo": ("↶ Undo my last label", "↶ 撤销我的上一条标注"),
    "keys": ("Keys: 1 positive · 2 negative · 3 skip · N next · P previous · U undo · Q next query of an uploaded "
             "list. A label moves on to the next unlabeled candidate.",
             "快捷键：1 正例 · 2 负例 · 3 跳过 · N 下一个 · P 上一个 · U 撤销 · Q 上传列表中的下一条查询。"
             "标注后自动跳到下一个未标注的候选。"),
    "saved": ("“{title}” labeled: {label}", "“{title}”已标注：{label}"),
    "undone": ("Removed: {label} for “{title}”.", "已撤销：“{title}”的“{label}”。"),
    "nothing_to_undo": ("Nothing to undo.", "没有可撤销的标注。"),
    "labeled": ("labeled: {label}", "已标注：{label}"), "unlabeled": ("not labeled yet", "尚未标注"),
    "all_done": ("Every candidate of this query is labeled.", "本查询的候选已全部标注。"),
    "no_candidates": ("No candidates for this query.", "此查询没有候选。"),
    "near": ("Looks like a passage already marked positive: check before marking it negative.",
             "与已标为正例的段落很相似：标为负例前请仔细核对。"),
    "suggested": ("Suggested hard negative: ranked high, not marked positive", "建议的难负例：排名靠前但未标为正例"),
    "totals": ("Labels per annotator", "各标注人的标注数"),
    "labeling_as": ("Labeling as {name}", "标注人：{name}"),
    "my_labels": ("My latest labels", "我最近的标注"),
    "my_cols": ("time,question,document,label", "时间,问题,文档,标注"),
    "name_col": ("annotator", "标注人"), "count_col": ("labels", "标注数"),
    "mine": ("Mine triplets automatically", "自动挖掘三元组"),
    "mine_intro": ("Each question's paired answer is the positive; hard negatives are documents BM25 and/or the "
                   "dense model rank high, minus any that share too many words with the positive (likely false "
                   "negatives).",
                   "每个问题配对的答案作为正例；难负例取自 BM25 和/或稠密模型排名靠前的文档，"
                   "并剔除与正例用词高度重合的文档（可能是假负例）。"),
    "source": ("Pairs from", "问答对来源"), "eval": ("this collection's judged queries", "本文档集的已标注查询"),
    "file": ("an uploaded Q/A file (question, answer columns)", "上传的问答文件（question、answer 列）"),
    "pairs_file": ("Q/A file (CSV or JSONL)", "问答文件（CSV 或 JSONL）"),
    "retrievers": ("Negatives from", "负例来源"),
    "kind_bm25": ("BM25 (keywords)", "BM25（关键词）"), "kind_dense": ("dense model (meaning)", "稠密模型（语义）"),
    "depth": ("Look down to rank", "候选深度"), "skip_top": ("Ignore the first N candidates", "忽略前 N 个候选"),
    "per_pair": ("Negatives per pair", "每对负例数"),
    "max_overlap": ("False-negative guard: max shared words with the positive", "假负例保护：与正例的最大词重合比例"),
    "margin": ("False-negative guard for dense candidates: score at least this share below the positive's",
               "稠密候选的假负例保护：得分须比正例低至少此比例"),
    "mine_button": ("Mine and save", "挖掘并保存"),
    "mining": ("Mining…", "正在挖掘…"),
    "mined": ("Saved {n} new mined triplets from {pairs} pairs ({known} were saved already).",
              "已从 {pairs} 个问答对挖掘并保存 {n} 个新三元组（{known} 个此前已保存）。"),
    "io": ("Import and export", "导入与导出"),
    "import": ("Import triplets (JSONL in the seed format, or CSV with query, positive, negative)",
               "导入三元组（种子格式 JSONL，或含 query、positive、negative 列的 CSV）"),
    "import_button": ("Import", "导入"),
    "imported": ("Imported {n} triplets ({known} were saved already).", "已导入 {n} 个三元组（{known} 个此前已保存）。"),
    "export": ("{n} training triplets (labels + mined + imported)", "共 {n} 个训练三元组（标注 + 挖掘 + 导入）"),
    "error": ("{error}", "{error}"),
})
t = texts(TEXTS)


def set_query(text: str) -> None:
    st.session_state.annotate_query = text


def query_list(store: Store) -> None:
    """An uploaded list of queries and a button (key Q) that takes the next one nobody has labeled yet; the same
    two elements whether or not any is left, so the card below never moves."""
    upload = st.file_uploader(t("list"), type=["txt", "csv", "tsv", "jsonl"], key="annotate_list")
    if not upload:
        return
    try:
        queries = read_queries(upload.getvalue(), upload.name)
    except MedSearchError as exc:
        st.error(inert(exc))
        return
    done = store.labeled_queries()
    todo = [q for q in queries if q not in done]
    progress = t("list_progress", done=len(queries) - len(todo), total=len(queries))
    st.caption(progress if todo else f"{progress} · :green[{t('list_done')}]")
    st.button(t("next"), on_click=set_query, args=(todo[0] if todo else "",), shortcut="q", disabled=not todo)


CARD_HEIGHT = 400  # px: every candidate's card is this tall (a longer passage scrolls inside), so nothing moves
KEYS = {"positive": "1", "negative": "2", "skip": "3", "previous": "p", "forward": "n", "undo": "u"}
BADGE = {"positive": "green", "negative": "red", "skip": "gray"}


def pool(collection, query: str) -> list:
    """The query's pooled candidates, searched once per session, collection build and query (every key press
    reruns the page, and must not search again)."""
    key = (collection.name, collection.build_id, query)
    saved = st.session_state.get("annotate_pool")
    if not saved or saved[0] != key:
        saved = st.session_state.annotate_pool = (key, candidates(collection, query))
    return saved[1]


def focus(query: str, doc_id: str | None) -> None:
    st.session_state.setdefault("annotate_focus", {})[query] = doc_id


def focused(query: str, shown, labels: dict[str, str]):
    """The candidate in focus: the one chosen last for this query, else the first unlabeled one, else the first."""
    ids = {c.doc_id: c for c in shown}
    doc = st.session_state.get("annotate_focus", {}).get(query)
    if doc not in ids:
        doc = next_candidate(shown, labels) or shown[0].doc_id
        focus(query, doc)
    return ids[doc]


def title_of(collection, doc_id: str) -> str:
    doc = collection.documents.get(doc_id)
    return (doc.title if doc else "") or doc_id


def on_screen(collection) -> tuple[str, list, object]:
    """(query, its candidates, the one in focus) as the page stands when a key is pressed. Read at that moment, not
    bound to the button when it was drawn: a key pressed while the page is still redrawing acts on the candidate in
    focus, never twice on the one before."""
    query = str(st.session_state.get("annotate_query") or "").strip()
    saved = st.session_state.get("annotate_pool")
    if not query or not saved or saved[0] != (collection.name, collection.build_id, query):
        return query, [], None
    doc = st.session_state.get("annotate_focus", {}).get(query)
    return query, saved[1], next((c for c in saved[1] if c.doc_id == doc), None)


def label(store: Store, collection, value: str, annotator: str) -> None:
    """Save the label of the candidate in focus, then focus the next unlabeled one (auto-advance)."""
    query, shown, candidate = on_screen(collection)
    if candidate is None:
        return
    store.label(query, candidate.doc_id, candidate.text, value, annotator)
    focus(query, next_candidate(shown, store.labels_for(query), after=candidate.doc_id) or candidate.doc_id)
    st.session_state.annotate_flash = t("saved", label=t(value), title=candidate.title or candidate.doc_id)


def move(collection, step: int) -> None:
    query, shown, candidate = on_screen(collection)
    if candidate is not None:
        ids = [c.doc_id for c in shown]
        focus(query, ids[(ids.index(candidate.doc_id) + step) % len(ids)])


def undo(store: Store, annotator: str, collection) -> None:
    """Remove the annotator's last label, name its passage by title, and focus it again when it is on screen."""
    query, shown, _ = on_screen(collection)
    removed = store.undo_label(annotator)
    if not removed:
        st.session_state.annotate_flash = t("nothing_to_undo")
        return
    st.session_state.annotate_flash = t("undone", label=t(removed["label"]), title=title_of(collection, removed["doc_id"]))
    if removed["query"] == query and removed["doc_id"] in {c.doc_id for c in shown}:
        focus(query, removed["doc_id"])


def candidate_card(collection, candidate, labels, flags, position: tuple[int, int]) -> None:
    """The focused candidate: always the same elements in the same places, in a card of fixed height."""
    near, suggested, all_done = flags
    with st.container(border=True, height=CARD_HEIGHT, key="annotate_card"):
        chosen = labels.get(candidate.doc_id)
        st.caption(t("position", n=position[0], total=position[1]))
        st.markdown(f"**{inert(candidate.title or candidate.doc_id)}**")
        st.badge(t("labeled", label=t(chosen)) if chosen else t("unlabeled"), color=BADGE.get(chosen, "blue"))
        if candidate.doc_id in near:
            hint = f":orange[⚠ {t('near')}]"
        elif candidate.doc_id in suggested:
            hint = f":blue[{t('suggested')}]"
        elif all_done:
            hint = f":green[{t('all_done')}]"
        else:
            hint = "&nbsp;"
        st.caption(hint)
        st.text(candidate.text)


def labeling(store: Store, collection, annotator: str) -> None:
    query = st.text_input(t("query"), key="annotate_query", max_chars=MAX_QUERY_CHARS).strip()
    query_list(store)
    if not query:
        return
    try:
        shown = pool(collection, query)
    except MedSearchError as exc:
        st.error(failure(exc))
        return
    if not shown:
        st.info(t("no_candidates"))
        return
    labels = store.labels_for(query)
    candidate = focused(query, shown, labels)
    positives = [d for d, v in labels.items() if v == "positive"]
    done = sum(c.doc_id in labels for c in shown)
    flags = (near_positives(collection, shown, positives), suggested_negatives(collection, query, shown, labels),
             done == len(shown))
    st.progress(done / len(shown), text=t("progress", done=done, total=len(shown)))
    position = [c.doc_id for c in shown].index(candidate.doc_id) + 1
    candidate_card(collection, candidate, labels, flags, (position, len(shown)))
    chosen = labels.get(candidate.doc_id)
    for cell, value in zip(st.columns(3), ("positive", "negative", "skip")):
        cell.button(t(value), key=f"annotate-{value}", on_click=guarded(label), shortcut=KEYS[value], width="stretch",
                    type="primary" if chosen == value else "secondary", args=(store, collection, value, annotator))
    back, forward, undo_cell = st.columns(3)
    back.button(t("previous"), key="annotate-previous", on_click=move, shortcut=KEYS["previous"], width="stretch",
                args=(collection, -1))
    forward.button(t("forward"), key="annotate-forward", on_click=move, shortcut=KEYS["forward"], width="stretch",
                   args=(collection, 1))
    undo_cell.button(t("undo"), key="annotate-undo", on_click=guarded(undo), shortcut=KEYS["undo"], width="stretch",
                     args=(store, annotator, collection))
    st.caption(t("keys"))
    st.caption(st.session_state.pop("annotate_flash", None) or "&nbsp;")


def my_labels(store: Store, annotator: str) -> None:
    rows = store.labels_of(annotator)
    if rows:
        with st.expander(t("my_labels")):
            st.dataframe(pd.DataFrame([[local_time(r["created"]), r["query"], r["doc_id"],
                                        t.plain(r["label"]) if r["label"] in TEXTS.entries else r["label"]] for r in rows],
                                      columns=t.plain("my_cols").split(",")), hide_index=True)


def mining(store: Store, collection, annotator: str) -> None:
    with st.expander(t("mine")):
        st.caption(t("mine_intro"))
        source = st.radio(t("source"), ["eval", "file"], format_func=t, horizontal=True,
                          index=0 if collection.eval_set else 1)
        upload = (st.file_uploader(t("pairs_file"), type=["csv", "tsv", "jsonl"], key="pairs")
                  if source == "file" else None)
        left, right = st.columns(2)
        kinds = left.multiselect(t("retrievers"), ["bm25", "dense"], format_func=lambda k: t.plain(f"kind_{k}"),
                                 default=["bm25", "dense"] if collection.models else ["bm25"])
        per_pair = left.number_input(t("per_pair"), 1, 20, 3)
        depth = right.number_input(t("depth"), 5, 200, 30)
        skip_top = right.number_input(t("skip_top"), 0, 50, 0)
        max_overlap = st.slider(t("max_overlap"), 0.1, 1.0, 0.5, 0.05)
        margin = st.slider(t("margin"), 0.0, 0.3, 0.05, 0.01, disabled="dense" not in kinds)
        if st.button(t("mine_button"), disabled=source == "file" and upload is None):
            update, clear = progress_bar(t("mining"))
            try:
                pairs = pairs_from_file(upload.getvalue(), upload.name) if upload else pairs_from_eval(collection)
                options = MiningOptions(tuple(kinds), skip_top, depth, per_pair, max_overlap, margin)
                found = mine(collection, pairs, options, update)
            except MedSearchError as exc:
                clear()
                st.error(inert(exc))
                return
            clear()
            added = store.import_triplets(found, source="mined", annotator=annotator)
            st.session_state.mined_flash = t("mined", n=added, known=len(found) - added, pairs=len(pairs))
    if flash := st.session_state.pop("mined_flash", None):
        st.success(flash)


def import_export(store: Store, annotator: str) -> None:
    with st.expander(t("io")):
        upload = st.file_uploader(t("import"), type=["jsonl", "csv", "tsv"], key="triplets_file")
        if upload and st.button(t("import_button")):
            try:
                triplets = read_triplets(upload.getvalue(), upload.name)
                added = store.import_triplets(triplets, annotator=annotator)
                st.success(t("imported", n=added, known=len(triplets) - added))
            except MedSearchError as exc:
                st.error(inert(exc))
        triplets = store.training_triplets()
        st.caption(t("export", n=len(triplets)))
        left, right = st.columns(2)
        left.download_button("JSONL", write_triplets(triplets, "jsonl"), "triplets.jsonl", disabled=not triplets)
        right.download_button("CSV", write_triplets(triplets, "csv"), "triplets.csv", disabled=not triplets)


user = require("label")
st.title(t("title"))
st.caption(t("intro"))
main, side = st.columns([3, 1])
with side:
    collection = pick_collection()
    if collection is None:
        st.stop()
    store = Store.of(collection.name, collection.folder.parent)
    if signin_configured():
        annotator = user.name
        st.caption(t("labeling_as", name=annotator))
    else:
        annotator = st.text_input(t("annotator"), key="annotator", max_chars=100).strip()
    totals = store.annotator_totals()
    if totals:
        st.markdown(f"**{t('totals')}**")
        st.dataframe(pd.DataFrame({t("name_col"): list(totals), t("count_col"): list(totals.values())}), hide_index=True)
with main:
    if annotator:
        labeling(store, collection, annotator)
        my_labels(store, annotator)
    else:
        st.info(t("need_name"))
    mining(store, collection, annotator or user.name)
    import_export(store, annotator or user.name)
