"""BEIR corpus.jsonl: one object per line with `_id`, `title`, `text`, optional `metadata`."""

from __future__ import annotations

from medsearch.ingest.common import IngestOptions, as_text, fail
from medsearch.ingest.jsonfile import load_jsonl
from medsearch.records import Document


def read_beir(data: bytes, name: str, options: IngestOptions) -> list[Document]:
    """Documents from a BEIR corpus; lines without `_id` are an error."""
    docs = []
    for n, row in enumerate(load_jsonl(data, name), start=1):
        if "_id" not in row:
            raise fail(name, "no_beir_id", n=n)
        meta = row.get("metadata")
        metadata = dict(meta) if isinstance(meta, dict) else ({} if meta in (None, "") else {"metadata": meta})
        docs.append(Document(str(row["_id"]), as_text(row.get("text")).strip(),
                             title=as_text(row.get("title")).strip(), source=name, metadata=metadata))
    return docs
