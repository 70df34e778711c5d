"""PDF files (pypdf): one document per file, text from all pages."""

from __future__ import annotations

import io

from medsearch.ingest.common import IngestOptions, clean_text, fail, stem
from medsearch.records import Document


def read_pdf(data: bytes, name: str, options: IngestOptions) -> list[Document]:
    """One document with the text of every page; metadata holds the page count."""
    from pypdf import PdfReader

    if not data:
        raise fail(name, "empty")
    if b"%PDF-" not in data[:1024]:
        raise fail(name, "not_pdf")
    pages: list[str] = []
    pdf_title = ""
    try:
        reader = PdfReader(io.BytesIO(data))
        locked = reader.is_encrypted and not reader.decrypt("")
        if not locked:
            pages = [page.extract_text() or "" for page in reader.pages]
            pdf_title = str(reader.metadata.get("/Title") or "").strip() if reader.metadata else ""
    except Exception as e:  # pypdf raises many kinds of errors on damaged files
        raise fail(name, "bad_pdf", why=f"{type(e).__name__}: {e}") from e
    if locked:
        raise fail(name, "pdf_password")
    text = clean_text("\n\n".join(p.strip() for p in pages))
    if not text:
        raise fail(name, "pdf_no_text", pages=len(pages))
    return [Document(stem(name), text, title=pdf_title or stem(name), source=name,
                     metadata={"pages": len(pages)})]
