"""BEIR corpus.jsonl: one object per line with `_id`, `title`, `text`, optional `metadata`."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from medsearch.ingest.common import IngestOptions, as_text, fail
from medsearch.ingest.jsonfile import load_jsonl
from medsearch.records import Document


def read_beir(data: bytes, name: str, options: IngestOptions) -> list[Document]:
    """Documents from an uploaded BEIR corpus; lines without `_id` are an error."""
    return beir_documents(load_jsonl(data, name), name, name)


def beir_documents(rows: Iterable[Mapping[str, Any]], name: str, source: str) -> list[Document]:
    """Documents from the rows of a BEIR corpus.jsonl (file `name`), each with that `source`."""
    docs = []
    for n, row in enumerate(rows, start=1):
        if "_id" not in row:
            raise fail(name, "no_beir_id", n=n)
        meta = row.get("metadata")
        metadata = dict(meta) if isinstance(meta, dict) else ({} if meta in (None, "") else {"metadata": meta})
        docs.append(Document(str(row["_id"]), as_text(row.get("text")).strip(),
                             title=as_text(row.get("title")).strip(), source=source, metadata=metadata))
    return docs
