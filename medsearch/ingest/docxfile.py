"""Word .docx files (python-docx): one document per file."""

from __future__ import annotations

import io

from medsearch.ingest.common import IngestOptions, clean_text, fail, stem
from medsearch.records import Document


def _open(data: bytes, name: str):
    import docx

    if not data:
        raise fail(name, "empty")
    if not data.startswith(b"PK"):
        raise fail(name, "not_docx_doc" if data.startswith(b"\xd0\xcf\x11\xe0") else "not_docx")
    try:
        return docx.Document(io.BytesIO(data))
    except Exception as e:  # BadZipFile, KeyError, PackageNotFoundError, XML errors...
        raise fail(name, "bad_docx", why=f"{type(e).__name__}: {e}") from e


def read_docx(data: bytes, name: str, options: IngestOptions) -> list[Document]:
    """Paragraphs (then table cells) joined by newlines; title from properties or headings."""
    document = _open(data, name)
    paragraphs = [p.text.strip() for p in document.paragraphs]
    for table in document.tables:
        for row in table.rows:
            cells = list(dict.fromkeys(c.text.strip() for c in row.cells if c.text.strip()))
            paragraphs.append("\t".join(cells))
    text = clean_text("\n".join(p for p in paragraphs if p))
    if not text:
        raise fail(name, "no_text_doc")
    title = (document.core_properties.title or "").strip()
    if not title:
        for p in document.paragraphs:
            style = (p.style.name if p.style is not None else "") or ""
            if p.text.strip() and (style.startswith("Heading") or style == "Title"):
                title = p.text.strip()
                break
    return [Document(stem(name), text, title=title or stem(name), source=name)]
