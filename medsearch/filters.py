"""Metadata filters, pushed into the indexes (FAISS id selectors, Milvus expressions, BM25 masks)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass


@dataclass(frozen=True)
class Filter:
    """Keep chunks whose metadata matches: every column's value (as text) is one of the allowed values."""

    wanted: Mapping[str, frozenset[str]]

    @classmethod
    def of(cls, filters: Mapping[str, object] | None) -> Filter | None:
        """From {column: value} or {column: [allowed values]}; an empty list does not filter that column;
        None when nothing filters."""
        wanted = {}
        for col, allowed in (filters or {}).items():
            values = allowed if isinstance(allowed, (list, tuple, set, frozenset)) else [allowed]
            if values:
                wanted[str(col)] = frozenset(str(v) for v in values)
        return cls(wanted) if wanted else None
