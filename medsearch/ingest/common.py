"""Options and small helpers shared by the ingest readers."""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from medsearch.i18n import FILE_ERRORS
from medsearch.records import Document, MedSearchError

TXT_MODES = ("auto", "file", "blocks")


@dataclass
class IngestOptions:
    """How to map tabular/JSON fields to documents and how to split .txt files.

    Column options left as None are guessed from the column names. `txt_mode` is
    "auto", "file" (one document per file) or "blocks" (blank-line-separated blocks).
    """

    text_column: str | None = None
    title_column: str | None = None
    id_column: str | None = None
    metadata_columns: list[str] | None = None
    txt_mode: str = "auto"
    strip_markdown: bool = True


class IngestError(MedSearchError):
    """A file that cannot be read: `code` and `params` say why (`i18n.FILE_ERRORS`, which the app renders in the UI
    language); the message says it in English, after the file name."""

    def __init__(self, name: str, code: str, **params: object) -> None:
        self.name, self.code, self.params = name, code, params
        super().__init__(f"{name}: {FILE_ERRORS(code, 'en', **params)}")


def fail(name: str, code: str, **params: object) -> IngestError:
    """The error for file `name`, for a reason in `i18n.FILE_ERRORS`."""
    return IngestError(name, code, **params)


def file_bytes(path: str | Path, name: str) -> bytes:
    """The bytes of the file at `path`; a missing, unreadable or folder path is an IngestError naming `name`."""
    try:
        return Path(path).read_bytes()
    except FileNotFoundError as e:
        raise fail(name, "not_found") from e
    except IsADirectoryError as e:
        raise fail(name, "folder") from e
    except OSError as e:
        raise fail(name, "unreadable", why=e.strerror) from e


def stem(name: str) -> str:
    """File name without folders and extension ("data/a.csv" -> "a")."""
    return Path(name).stem or "doc"


def clean_text(text: str) -> str:
    """Normalise newlines, strip trailing spaces per line, squeeze blank-line runs."""
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    text = re.sub(r"[ \t\u3000]+\n", "\n", text)
    text = re.sub(r"\n[ \t]*\n(?:[ \t]*\n)+", "\n\n", text)
    return text.strip()


def as_text(value: Any) -> str:
    """Render a field value as text: lists joined by newlines, None as ""."""
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    if isinstance(value, (list, tuple)):
        return "\n".join(as_text(v) for v in value if v is not None)
    return str(value)


def text_value(value: Any) -> str:
    """The text a field holds: a string, or strings of a list joined by newlines; numbers, true/false,
    objects and None hold none ("")."""
    if isinstance(value, str):
        return value
    if isinstance(value, (list, tuple)):
        return "\n".join(t for t in map(text_value, value) if t)
    return ""


def unique_ids(docs: Iterable[Document], taken: set[str] | None = None) -> list[Document]:
    """Make ids unique by suffixing repeats with -2, -3...; `taken` is updated in place."""
    seen = taken if taken is not None else set()
    out = []
    for doc in docs:
        base, k = doc.id, 2
        while doc.id in seen:
            doc.id = f"{base}-{k}"
            k += 1
        seen.add(doc.id)
        out.append(doc)
    return out
