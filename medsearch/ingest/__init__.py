"""Read documents from files or uploaded bytes, in many formats.

Formats (by extension, checked against the content): .csv, .tsv, .json (generic,
or PubMedQA when it is a dict of {QUESTION, CONTEXTS} objects), .jsonl (generic, or
BEIR when named corpus.jsonl or rows have `_id`), .parquet (generic records), .txt,
.md/.markdown, .pdf, .docx, .xml (MedQuAD). A .json, .jsonl or .parquet file with
MedMCQA's keys (question, opa..opd) is read as MedMCQA. Every error is a MedSearchError
whose message names the file.
"""

from __future__ import annotations

import shutil
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from medsearch.ingest.beir import read_beir
from medsearch.ingest.columns import pick_columns, rows_to_documents, union_columns
from medsearch.ingest.common import IngestOptions, fail, file_bytes, unique_ids
from medsearch.ingest.csvfile import RaggedRows, read_csv, read_rows
from medsearch.ingest.docxfile import read_docx
from medsearch.ingest.encoding import decode_bytes, read_text
from medsearch.ingest.jsonfile import json_documents, json_rows, load_json, load_jsonl, parse_json, read_jsonl
from medsearch.ingest.markdown import read_markdown
from medsearch.ingest.medmcqa import looks_like_medmcqa, read_medmcqa
from medsearch.ingest.medquad import read_medquad
from medsearch.ingest.parquet import is_parquet, read_parquet
from medsearch.ingest.pdffile import read_pdf
from medsearch.ingest.pubmedqa import is_pubmedqa, pubmedqa_documents, read_pubmedqa
from medsearch.ingest.text import read_txt
from medsearch.limits import check_rows
from medsearch.records import Document, MedSearchError

__all__ = ["EXTENSIONS", "FORMATS", "ColumnMapping", "IngestOptions", "RaggedRows", "detect_format", "read_documents",
           "read_many", "read_text", "save_upload", "table_columns", "unique_ids"]

Reader = Callable[[bytes, str, IngestOptions], list[Document]]
Source = str | Path | tuple[str, bytes]


def _read_json_any(data: bytes, name: str, options: IngestOptions) -> list[Document]:
    """A .json file: PubMedQA when it looks like it, else a generic list/object of records."""
    value = load_json(data, name)
    if is_pubmedqa(value) and not options.text_column:
        return pubmedqa_documents(value, name)
    return json_documents(value, name, options)


def _read_jsonl_any(data: bytes, name: str, options: IngestOptions) -> list[Document]:
    """A .jsonl file: BEIR when named corpus.jsonl or rows have `_id`, else generic rows."""
    text = decode_bytes(data, name)
    first = next((line for line in text.splitlines() if line.strip()), "")
    try:
        has_id = isinstance(row := parse_json(first, name), dict) and "_id" in row
    except MedSearchError:
        has_id = False
    beir = Path(name).name.lower() == "corpus.jsonl" or has_id
    if beir and not (options.text_column or options.title_column or options.id_column):
        return read_beir(data, name, options)
    return read_jsonl(data, name, options)


def _read_parquet(data: bytes, name: str, options: IngestOptions) -> list[Document]:
    """A .parquet file: one document per record, columns mapped like a CSV's."""
    columns, rows = read_parquet(data, name)
    if not rows:
        raise fail(name, "no_records")
    return rows_to_documents(rows, columns, name=name, options=options)


def _or_medmcqa(reader: Reader) -> Reader:
    """`reader`, except that MedMCQA content is read as MedMCQA (unless a text column was chosen)."""
    def read(data: bytes, name: str, options: IngestOptions) -> list[Document]:
        if looks_like_medmcqa(data) and not options.text_column:
            return read_medmcqa(data, name, options)
        return reader(data, name, options)
    return read


FORMATS: dict[str, Reader] = {
    "csv": read_csv, "tsv": read_csv, "json": _or_medmcqa(_read_json_any), "jsonl": _or_medmcqa(_read_jsonl_any),
    "parquet": _or_medmcqa(_read_parquet), "beir": read_beir, "pubmedqa": read_pubmedqa, "medquad": read_medquad,
    "medmcqa": read_medmcqa, "txt": read_txt, "markdown": read_markdown, "pdf": read_pdf, "docx": read_docx,
}
EXTENSIONS = {
    ".csv": "csv", ".tsv": "tsv", ".tab": "tsv", ".json": "json", ".jsonl": "jsonl",
    ".ndjson": "jsonl", ".parquet": "parquet", ".txt": "txt", ".text": "txt", ".md": "markdown",
    ".markdown": "markdown", ".pdf": "pdf", ".docx": "docx", ".xml": "medquad",
}
_ALIASES = {"md": "markdown", "text": "txt", "ndjson": "jsonl", "xml": "medquad"}


def detect_format(name: str, data: bytes = b"") -> str:
    """The format key for a file name (by extension, else by the content's magic bytes)."""
    suffix = Path(name).suffix.lower()
    if suffix in EXTENSIONS:
        return EXTENSIONS[suffix]
    if data.startswith(b"%PDF-"):
        return "pdf"
    if is_parquet(data):
        return "parquet"
    if data.startswith(b"PK\x03\x04") and b"word/" in data[:4096]:
        return "docx"
    if suffix == ".doc":
        raise fail(name, "old_doc")
    supported = ", ".join(sorted(EXTENSIONS))
    if suffix:
        raise fail(name, "unsupported_type", suffix=suffix, supported=supported)
    raise fail(name, "no_extension", supported=supported)


@dataclass
class ColumnMapping:
    """The columns of a tabular upload and the mapping MedSearch would guess for them."""

    columns: list[str]
    text: str
    title: str | None
    id: str | None
    metadata: list[str]


def _table(name: str, data: bytes) -> tuple[list[str], list[dict]] | None:
    key = detect_format(name, data)
    if key in ("csv", "tsv"):
        return read_rows(decode_bytes(data, name), name)
    if key not in ("json", "jsonl", "parquet") or looks_like_medmcqa(data):
        return None
    if key == "parquet":
        return read_parquet(data, name)
    if key == "json":
        value = load_json(data, name)
        if is_pubmedqa(value):
            return None
        rows = json_rows(value, name)[0]
    else:
        rows = load_jsonl(data, name)
        if Path(name).name.lower() == "corpus.jsonl" or (rows and "_id" in rows[0]):
            return None
    return union_columns(rows), rows


def table_columns(name: str, data: bytes | None = None, *, path: str | Path | None = None) -> ColumnMapping | None:
    """Columns of a CSV/TSV/JSON/JSONL/Parquet upload (`data`, or the file at `path`) with the guessed mapping;
    None for fixed formats or unreadable files."""
    try:
        found = _table(name, _load(path, data, name))
        if found is None or not found[1]:
            return None
        columns, rows = found
        return ColumnMapping(columns, *pick_columns(columns, rows, IngestOptions(), name))
    except MedSearchError:
        return None


def _load(path: str | Path | None, data: bytes | None, name: str) -> bytes:
    if data is not None:
        return data
    if path is None:
        raise MedSearchError("read_documents needs a path or data")
    return file_bytes(path, name)


def read_documents(
    path: str | Path | None = None,
    *,
    fmt: str | None = None,
    options: IngestOptions | None = None,
    data: bytes | None = None,
    name: str | None = None,
) -> list[Document]:
    """Documents of one file (or of uploaded `data` named `name`).

    Empty texts are dropped, ids are made unique within the file, and a file that
    yields no document is a MedSearchError that names the file.
    """
    name = name or (Path(path).name if path is not None else "upload")
    options = options or IngestOptions()
    raw = _load(path, data, name)
    key = _ALIASES.get(fmt.lower(), fmt.lower()) if fmt else detect_format(name, raw)
    if key not in FORMATS:
        raise fail(name, "unknown_format", fmt=fmt, known=", ".join(FORMATS))
    try:
        docs = FORMATS[key](raw, name, options)
    except MedSearchError:
        raise
    except Exception as e:  # a reader bug or an odd file must not reach the user raw
        raise fail(name, "reader_failed", why=f"{type(e).__name__}: {e}") from e
    for doc in docs:
        doc.source = doc.source or name
    docs = unique_ids(d for d in docs if d.text.strip())
    check_rows(name, len(docs))
    if not docs:
        raise fail(name, "no_documents_qa" if key == "medquad" else "no_documents")
    return docs


def _expand(sources: Iterable[Source]) -> list[Source]:
    """Folders replaced by the supported files inside them, recursively and sorted."""
    out: list[Source] = []
    for src in sources:
        if not isinstance(src, tuple) and Path(src).is_dir():
            out.extend(p for p in sorted(Path(src).rglob("*"))
                       if p.is_file() and p.suffix.lower() in EXTENSIONS)
        else:
            out.append(src)
    return out


def read_many(
    paths: Iterable[Source], *, options: IngestOptions | None = None
) -> tuple[list[Document], list[str]]:
    """Documents of many files plus one error message per file that failed.

    Items are paths (folders are searched recursively) or (name, bytes) uploads.
    Ids are made unique across all files (repeats get a -2, -3... suffix).
    """
    docs: list[Document] = []
    errors: list[str] = []
    taken: set[str] = set()
    for src in _expand(paths):
        try:
            if isinstance(src, tuple):
                found = read_documents(name=src[0], data=src[1], options=options)
            else:
                found = read_documents(src, options=options)
        except MedSearchError as e:
            errors.append(str(e))
            continue
        docs.extend(unique_ids(found, taken))
        check_rows("all files", len(docs))
    return docs, errors


def save_upload(upload: BinaryIO, name: str, folder: str | Path) -> Path:
    """Copy an uploaded file object to a new file in `folder`, in pieces, and return its path.

    The file is named by a random id and the extension of `name` (which must be a supported one), never
    by `name` itself; read it with `read_documents(path, name=name)`. The caller removes it.
    """
    detect_format(name)  # a MedSearchError for an unsupported type
    path = Path(folder) / f"upload-{uuid.uuid4().hex}{Path(name).suffix.lower()}"
    with open(path, "xb") as out:
        shutil.copyfileobj(upload, out, 1 << 20)
    return path
