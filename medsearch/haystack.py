"""Haystack 2 components over a MedSearch collection: `MedSearchRetriever` and `MedSearchDocumentStore`.

Only this module imports Haystack (`pip install haystack-ai`); the rest of MedSearch never does. Haystack's
telemetry is off: this module sets HAYSTACK_TELEMETRY_ENABLED=False (unless it is already set) before
importing it.

A MedSearch document is a Haystack `Document` with the same id, `content` = its text and `meta` = its metadata,
plus `title` and `source` when they are set and not metadata columns already (the demo's metadata `source`, the
guideline it cites, stays). Written documents keep their whole `meta` as metadata; `meta["title"]` and
`meta["source"]` also become the document's title and source. A retrieved chunk is a `Document` with the chunk's
id, text and score, its document's meta, and `doc_id`, `chunk_id` and `retriever` (what scored it) added.
"""

# ruff: noqa: E402 - telemetry is switched off before haystack is imported
from __future__ import annotations

import os

os.environ.setdefault("HAYSTACK_TELEMETRY_ENABLED", "False")

from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import IO, Any

from medsearch.records import MedSearchError

try:
    from haystack import Document, component, default_from_dict, default_to_dict
    from haystack.document_stores.errors import DuplicateDocumentError
    from haystack.document_stores.types import DuplicatePolicy
    from haystack.errors import FilterError
    from haystack.utils.filters import document_matches_filter
except ModuleNotFoundError as missing:
    raise MedSearchError(f"Haystack is not installed ({missing.name}): pip install haystack-ai") from missing

from medsearch import records
from medsearch.collection import BuildOptions, Collection, validate_name
from medsearch.corpusdb import facet_value
from medsearch.jsonl import jsonl_text
from medsearch.searching import RETRIEVERS

WAIT = 600.0  # seconds a write waits for another writer of the same collection
_RUNS = "MedSearchRetriever runs `meta.<column>` == value, `meta.<column>` in [values] and an AND of those"


def _meta(title: str, source: str, metadata: Mapping[str, Any]) -> dict[str, Any]:
    found = dict(metadata)
    for key, value in (("title", title), ("source", source)):
        if value:
            found.setdefault(key, value)
    return found


def to_haystack(document: records.Document) -> Document:
    """A MedSearch document as a Haystack Document (see the module's docstring)."""
    return Document(id=document.id, content=document.text, meta=_meta(document.title, document.source,
                                                                       document.metadata))


def from_haystack(document: Document) -> records.Document:
    """A Haystack Document as a MedSearch document; ValueError when it is not a Document or has no text."""
    if not isinstance(document, Document):
        raise ValueError(f"Expected a Haystack Document, got {type(document).__name__}.")
    if not (document.content or "").strip():
        raise ValueError(f"Document {document.id} has no text content: MedSearch indexes text.")
    meta = dict(document.meta)
    return records.Document(document.id, document.content or "", str(meta.get("title") or ""),
                            str(meta.get("source") or ""), meta)


def medsearch_filters(filters: Mapping[str, Any] | None) -> dict[str, list[str]] | None:
    """MedSearch filters ({column: allowed values as text}) from Haystack filters of the shapes MedSearch runs
    inside its indexes: `meta.<column>` == value, `meta.<column>` in [values], and an AND of those. None when
    nothing can match (an empty `in` list, an AND of disjoint values); FilterError for any other shape."""
    wanted: dict[str, frozenset[str]] = {}
    for column, values in _conditions(filters) if filters else ():
        wanted[column] = wanted[column] & values if column in wanted else values
    if not all(wanted.values()):
        return None
    return {column: sorted(values) for column, values in wanted.items()}


def _conditions(node: Any) -> Iterator[tuple[str, frozenset[str]]]:
    if not isinstance(node, Mapping):
        raise FilterError(f"{_RUNS}; a filter is a dict, not {node!r}.")
    if "field" not in node and node.get("operator") == "AND":
        if not isinstance(node.get("conditions"), list):
            raise FilterError(f"An AND filter needs a list of conditions: {node!r}.")
        for condition in node["conditions"]:
            yield from _conditions(condition)
        return
    if node.get("operator") not in ("==", "in") or "field" not in node or "value" not in node:
        raise FilterError(f"{_RUNS}, not {node!r}.")
    field, value = str(node["field"]), node["value"]
    if not field.startswith("meta."):
        raise FilterError(f"{_RUNS}: it filters on metadata columns (meta.<column>), not '{field}'.")
    if node["operator"] == "in" and not isinstance(value, list):
        raise FilterError(f"The value of an 'in' filter is a list, not {value!r}.")
    texts = [facet_value(v) for v in (value if node["operator"] == "in" else [value])]
    if any(text is None for text in texts):
        raise FilterError(f"MedSearch compares plain values (text, numbers, booleans), not {value!r}.")
    yield field.removeprefix("meta."), frozenset(t for t in texts if t is not None)


def _home(home: str | Path | None) -> str | None:
    return str(home) if home is not None else None


@component
class MedSearchRetriever:
    """Retrieves chunks of a MedSearch collection with one of its retrievers (auto, bm25, tfidf, dense, hybrid).

    The collection is opened on first use, and again whenever it changed (documents written, deleted).
    """

    def __init__(self, collection: str, home: str | Path | None = None, retriever: str = "auto",
                 model: str | None = None, top_k: int = 10) -> None:
        if retriever not in RETRIEVERS:
            raise ValueError(f"Unknown retriever '{retriever}': choose one of {', '.join(RETRIEVERS)}.")
        if top_k < 1:
            raise ValueError(f"top_k must be at least 1, not {top_k}.")
        self.collection, self.home = validate_name(collection), _home(home)
        self.retriever, self.model, self.top_k = retriever, model, top_k
        self._opened: Collection | None = None

    def _open(self) -> Collection:
        if self._opened is None or not self._opened.is_current():
            self._opened = Collection.open(self.collection, self.home)
        return self._opened

    def warm_up(self) -> None:
        """Open the collection and load the retriever (a Pipeline calls this before its first run)."""
        self._open().retriever(self.retriever, self.model)

    @component.output_types(documents=list[Document])
    def run(self, query: str, top_k: int | None = None,
            filters: dict[str, Any] | None = None) -> dict[str, list[Document]]:
        """The top_k chunks for a query, best first, as scored Documents; `filters` as in `medsearch_filters`."""
        wanted = medsearch_filters(filters)
        if wanted is None:
            return {"documents": []}
        collection = self._open()
        hits = collection.search(query, self.top_k if top_k is None else top_k, self.retriever, self.model, wanted)
        return {"documents": [_hit_document(collection, hit) for hit in hits]}

    def to_dict(self) -> dict[str, Any]:
        return default_to_dict(self, collection=self.collection, home=self.home, retriever=self.retriever,
                               model=self.model, top_k=self.top_k)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> MedSearchRetriever:
        return default_from_dict(cls, data)


def _hit_document(collection: Collection, hit: records.Hit) -> Document:
    chunk = collection.chunks[hit.chunk_id]
    meta = _meta(chunk.title, collection.documents[hit.doc_id].source, chunk.metadata)
    meta.update(doc_id=hit.doc_id, chunk_id=hit.chunk_id, retriever=hit.retriever)
    return Document(id=hit.chunk_id, content=chunk.text, score=hit.score, meta=meta)


class MedSearchDocumentStore:
    """A Haystack DocumentStore over a MedSearch collection, which the first write creates with `models`
    (None: the default dense model for the text's languages; []: BM25 and TF-IDF only). Filters of
    `filter_documents` are Haystack's (any shape): it reads every document."""

    def __init__(self, collection: str, home: str | Path | None = None, models: list[str] | None = None) -> None:
        self.collection, self.home, self.models = validate_name(collection), _home(home), models

    def _open(self) -> Collection | None:
        if not Collection.exists(self.collection, self.home):
            return None
        return Collection.open(self.collection, self.home)

    def count_documents(self) -> int:
        found = self._open()
        return found.manifest["counts"]["documents"] if found else 0

    def filter_documents(self, filters: dict[str, Any] | None = None) -> list[Document]:
        found = self._open()
        documents = (to_haystack(d) for d in found.documents.values()) if found else iter(())
        return [d for d in documents if not filters or document_matches_filter(filters, d)]

    def write_documents(self, documents: list[Document], policy: DuplicatePolicy = DuplicatePolicy.NONE) -> int:
        """Add documents to the collection (creating it); returns how many were written. A document whose id
        is saved, or repeated in `documents`, is replaced (OVERWRITE), skipped (SKIP) or, by default, refused
        with DuplicateDocumentError before anything is written (FAIL and NONE, as in Haystack's in-memory store)."""
        if not isinstance(documents, list) or not all(isinstance(d, Document) for d in documents):
            raise ValueError("write_documents takes a list of Haystack Documents.")
        found = self._open()
        chosen = [from_haystack(d) for d in _written(documents, policy, lambda i: found is not None
                                                     and i in found.documents)]
        if not chosen:
            return 0
        if found is None:
            Collection.create(self.collection, chosen, BuildOptions(models=self.models), home=self.home, wait=WAIT)
        else:
            found.add_documents(chosen, wait=WAIT)
        return len(chosen)

    def delete_documents(self, document_ids: list[str]) -> None:
        """Delete documents by id; ids the collection does not have are ignored. Deleting every document is
        refused (MedSearchError): delete the collection instead."""
        found = self._open()
        present = [i for i in dict.fromkeys(document_ids) if found is not None and i in found.documents]
        if present and found is not None:
            found.delete_documents(present, wait=WAIT)

    def to_dict(self) -> dict[str, Any]:
        return default_to_dict(self, collection=self.collection, home=self.home, models=self.models)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> MedSearchDocumentStore:
        return default_from_dict(cls, data)


def _written(documents: list[Document], policy: DuplicatePolicy, saved: Callable[[str], bool]) -> list[Document]:
    """The documents a write adds under a duplicate policy: the last of one id (OVERWRITE), the first (SKIP)."""
    chosen: dict[str, Document] = {}
    for document in documents:
        if document.id in chosen or saved(document.id):
            if policy in (DuplicatePolicy.FAIL, DuplicatePolicy.NONE):
                raise DuplicateDocumentError(f"Document {document.id} is already written (duplicate policy {policy.name}).")
            if policy is DuplicatePolicy.SKIP:
                continue
        chosen[document.id] = document
    return list(chosen.values())


def export_documents(collection: Collection, out: IO[str]) -> int:
    """Write every document of a collection to `out` as JSON Lines, one Haystack `Document.to_dict(flatten=False)`
    per line (read back with `Document.from_dict`); returns how many."""
    count = 0
    for document in collection.documents.values():
        out.write(jsonl_text([to_haystack(document).to_dict(flatten=False)]))
        count += 1
    return count
