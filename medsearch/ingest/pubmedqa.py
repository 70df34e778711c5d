"""PubMedQA JSON: {PMID: {QUESTION, CONTEXTS, LABELS, MESHES, LONG_ANSWER, final_decision}}."""

from __future__ import annotations

from typing import Any

from medsearch.ingest.common import IngestOptions, as_text, fail
from medsearch.ingest.jsonfile import load_json
from medsearch.records import Document

SOURCE = "PubMedQA"


def is_pubmedqa(value: Any) -> bool:
    """True for a non-empty dict of objects whose first one has QUESTION and CONTEXTS."""
    if not isinstance(value, dict) or not value:
        return False
    first = next(iter(value.values()))
    return isinstance(first, dict) and "QUESTION" in first and "CONTEXTS" in first


def pubmedqa_documents(value: Any, name: str) -> list[Document]:
    """Documents from parsed PubMedQA JSON: text = contexts, title = question."""
    if not is_pubmedqa(value):
        raise fail(name, "not_pubmedqa")
    docs = []
    for pmid, item in value.items():
        if not isinstance(item, dict):
            raise fail(name, "not_entry", pmid=pmid)
        meta = {"pmid": str(pmid), "meshes": item.get("MESHES"), "labels": item.get("LABELS"),
                "final_decision": item.get("final_decision"), "long_answer": item.get("LONG_ANSWER"),
                "year": item.get("YEAR"), "file": name}
        docs.append(Document(str(pmid), as_text(item.get("CONTEXTS")).strip(),
                             title=as_text(item.get("QUESTION")).strip(), source=SOURCE,
                             metadata={k: v for k, v in meta.items() if v not in (None, "", [])}))
    return docs


def read_pubmedqa(data: bytes, name: str, options: IngestOptions) -> list[Document]:
    """One document per PMID of a PubMedQA JSON file."""
    return pubmedqa_documents(load_json(data, name), name)
