"""Dense retrieval: encode the query, look up its nearest chunks in a vector store (`medsearch.vectors`)."""

from __future__ import annotations

from medsearch.encoders import Encoder
from medsearch.filters import Filter
from medsearch.records import Hit
from medsearch.retrieval import Table


class DenseRetriever:
    """Encodes the query and looks up its nearest chunks."""

    name = "dense"

    def __init__(self, encoder: Encoder, store, table: Table) -> None:
        self.encoder, self.store, self.table = encoder, store, table

    def search(self, query: str, k: int = 10, where: Filter | None = None) -> list[Hit]:
        return self.search_many([query], k, where)[0]

    def search_many(self, queries: list[str], k: int = 10, where: Filter | None = None) -> list[list[Hit]]:
        """Search several queries with one batched encode."""
        vectors = self.encoder.encode(queries, query=True)
        scores, rows = self.store.search(vectors, k, where)
        return [self.table.hits(r, s, self.name) for r, s in zip(rows, scores)]
