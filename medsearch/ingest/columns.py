"""Map rows (CSV lines, JSON objects) to documents, guessing the columns when needed."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from medsearch.ingest.common import IngestOptions, as_text, fail, stem, text_value
from medsearch.records import Document

TEXT_NAMES = ("text", "content", "body", "answer", "passage", "abstract", "document",
              "正文", "内容", "答案", "回答", "文本")
TITLE_NAMES = ("title", "question", "heading", "name", "标题", "问题", "题目", "名称")
ID_NAMES = ("id", "_id", "doc_id", "docid", "document_id", "pmid", "编号")


def _find(columns: Sequence[str], wanted: str, name: str, what: str) -> str:
    """The column matching `wanted` (exact, then case-insensitive) or a clear error."""
    if wanted in columns:
        return wanted
    for col in columns:
        if col.strip().lower() == wanted.strip().lower():
            return col
    available = ", ".join(columns) or "none"
    raise fail(name, "no_column", what=what, wanted=wanted, available=available)


def _guess(columns: Sequence[str], names: Sequence[str], exclude: set[str]) -> str | None:
    """First column whose lower-cased name is in `names`, in the order of `names`."""
    lowered = {c.strip().lower(): c for c in columns if c not in exclude}
    for n in names:
        if n in lowered:
            return lowered[n]
    return None


def _longest(rows: Sequence[dict[str, Any]], columns: Sequence[str], exclude: set[str]) -> str | None:
    """The column with the most text on average: the fallback text column."""
    best, best_len = None, 0.0
    for col in columns:
        if col in exclude:
            continue
        total = sum(len(text_value(r.get(col))) for r in rows[:200])
        if total > best_len:
            best, best_len = col, total
    return best


def pick_columns(
    columns: Sequence[str], rows: Sequence[dict[str, Any]], options: IngestOptions, name: str
) -> tuple[str, str | None, str | None, list[str]]:
    """Resolve (text, title, id, metadata) columns from options or by guessing."""
    o = options
    id_col = _find(columns, o.id_column, name, "id") if o.id_column else None
    title_col = _find(columns, o.title_column, name, "title") if o.title_column else None
    text_col = _find(columns, o.text_column, name, "text") if o.text_column else None
    if text_col is None:
        textless = {c for c in columns if not any(text_value(r.get(c)).strip() for r in rows[:200])}
        taken = {c for c in (id_col, title_col) if c} | textless
        text_col = _guess(columns, TEXT_NAMES, taken) or _longest(rows, columns, taken)
        if text_col is None:
            raise fail(name, "no_text_field")
    if title_col is None and not o.title_column:
        title_col = _guess(columns, TITLE_NAMES, {text_col, id_col or ""})
    if id_col is None and not o.id_column:
        id_col = _guess(columns, ID_NAMES, {text_col, title_col or ""})
    used = {text_col, title_col, id_col}
    if o.metadata_columns is not None:
        meta = [_find(columns, m, name, "metadata") for m in o.metadata_columns]
    else:
        meta = [c for c in columns if c not in used]
    return text_col, title_col, id_col, meta


def rows_to_documents(
    rows: Sequence[dict[str, Any]],
    columns: Sequence[str],
    *,
    name: str,
    options: IngestOptions | None = None,
    keys: Sequence[str] | None = None,
) -> list[Document]:
    """Documents from rows; ids from the id column, else `keys`, else `<stem>-<n>`."""
    options = options or IngestOptions()
    text_col, title_col, id_col, meta_cols = pick_columns(columns, rows, options, name)
    docs = []
    for n, row in enumerate(rows, start=1):
        text = text_value(row.get(text_col)).strip()
        if not text:
            continue
        doc_id = as_text(row.get(id_col)).strip() if id_col else ""
        if not doc_id:
            doc_id = keys[n - 1] if keys else f"{stem(name)}-{n}"
        metadata = {c: row[c] for c in meta_cols if row.get(c) not in (None, "")}
        title = as_text(row.get(title_col)).strip() if title_col else ""
        docs.append(Document(doc_id, text, title=title, source=name, metadata=metadata))
    return docs


def union_columns(rows: Sequence[dict[str, Any]]) -> list[str]:
    """All keys of the rows, in first-seen order."""
    seen: dict[str, None] = {}
    for row in rows:
        seen.update(dict.fromkeys(row))
    return list(seen)
