"""The small records that flow through MedSearch, and its user-facing error."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any


class MedSearchError(Exception):
    """An error a user can cause; its message is fit to show as is."""


@dataclass
class Document:
    """One source document: a passage, an article, a Q/A pair."""

    id: str
    text: str
    title: str = ""
    source: str = ""
    metadata: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @property
    def cited(self) -> str:
        """What a reader is told the document comes from: the work its metadata cites (`source`, as the demo
        corpus names its guideline), else the file or set it was read from."""
        found = self.metadata.get("source")
        return str(found) if isinstance(found, (str, int, float)) and str(found).strip() else self.source


@dataclass
class Chunk:
    """A searchable piece of a document; `doc_id` points back to it."""

    id: str
    doc_id: str
    text: str
    title: str = ""
    position: int = 0
    metadata: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class Hit:
    """A scored search result from one retriever (or a fusion of several)."""

    chunk_id: str
    doc_id: str
    score: float
    rank: int
    retriever: str


@dataclass
class Passage:
    """A retrieved passage as a person or a language model reads it (a `Hit` resolved to its text), numbered from
    1; the one type for what retrieval shows, from answers' citations to the annotator's candidates."""

    n: int
    doc_id: str
    title: str
    source: str
    text: str
    level: str | None = None  # relevance to the question (`medsearch.relevance`): high, medium, low
    ranks: dict[str, int] = field(default_factory=dict)  # where each retriever put it, when several were pooled
