"""A Milvus collection as a MedSearch vector store: the twin of `vectors.FaissStore`.

One Milvus collection holds a model's vectors: `row` (int64 chunk row number, the primary key),
`vector` (float32, L2-normalised, inner product = cosine) and `meta` (JSON: {column: value as text}).
The vector index follows `--vector-index` as FAISS does (`vectors.choose_kind`): FLAT (exact) below 50k
rows, HNSW above, IVF_PQ when asked; its parameters are kept in the description (the manifest). Metadata filters run inside Milvus as an expression on `meta`.

Column names are stored percent-encoded (`column_key`: letters, digits and `_` kept): Milvus 2.3 cannot
address every JSON key in an expression (a key holding `][` even crashes the 2.3.5 server's parser).
Values are stored as text and quoted in expressions as JSON strings, which Milvus reads alike.

Searches use Bounded consistency (Strong would wait for Milvus's time tick, ~200 ms a search); `flush()`
persists added and removed rows and waits until Bounded reads see them, so a writer calls it once after a
batch of `add`/`remove`, before switching the manifest, as it saves a FAISS index. Counts are Strong.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, Literal
from urllib.parse import urlsplit

import numpy as np

from medsearch.filters import Filter
from medsearch.records import MedSearchError
from medsearch.vectors import HNSW_EF_SEARCH, choose_kind

if TYPE_CHECKING:
    from pymilvus import CollectionSchema, MilvusClient

URI_ENV = "MEDSEARCH_MILVUS_URI"
DEFAULT_PORT = 19530
BATCH = 5_000            # rows per insert / delete call
QUERY_BATCH = 1_024      # queries per search call
MAX_K = 16_384           # Milvus's largest top-k
TIMEOUT = 60.0           # seconds per call
CONSISTENCY = "Strong"   # counts, and the writer's check in `flush`
READ = "Bounded"         # searches: Strong would wait for Milvus's next time tick (~200 ms a search, measured)
ROW, VECTOR, META = "row", "vector", "meta"
INDEX = {"index_type": "FLAT", "params": {}}  # collections described before the index was chosen
METRIC = "IP"
NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,254}")
BAD_URI = "A Milvus server address looks like milvus://HOST:PORT or http://HOST:PORT."


def milvus_uri(given: str | None) -> str:
    """The pymilvus URI (http://HOST:PORT) for `given`, or for $MEDSEARCH_MILVUS_URI when none is given."""
    text = (given or os.environ.get(URI_ENV) or "").strip()
    if not text:
        raise MedSearchError(f"No Milvus server given: pass its address or set {URI_ENV} "
                             f"(for example milvus://localhost:{DEFAULT_PORT}).")
    try:
        parts = urlsplit(text)
        port = parts.port or DEFAULT_PORT
    except ValueError:
        raise MedSearchError(BAD_URI) from None
    if parts.username is not None or parts.password is not None:
        raise MedSearchError("A Milvus server address must not hold a user name or password.")
    if parts.scheme.lower() not in ("milvus", "http") or not parts.hostname or parts.path not in ("", "/") \
            or parts.query or parts.fragment:
        raise MedSearchError(BAD_URI)
    host = f"[{parts.hostname}]" if ":" in parts.hostname else parts.hostname
    return f"http://{host}:{port}"


def collection_name(text: str) -> str:
    """A valid Milvus collection name made from any text (stable; distinct texts give distinct names)."""
    cleaned = re.sub(r"[^A-Za-z0-9_]+", "_", text).strip("_")[:200]
    return f"medsearch_{cleaned}_{hashlib.sha1(text.encode('utf-8', 'surrogatepass')).hexdigest()[:8]}"


def column_key(column: str) -> str:
    """The JSON key a metadata column is stored under: letters, digits and `_` kept, the rest as %XX (UTF-8)."""
    key = "".join(ch if ch.isalnum() or ch == "_" else _percent(ch) for ch in str(column))
    return key or "%"


def _percent(ch: str) -> str:
    return "".join(f"%{byte:02X}" for byte in ch.encode("utf-8", "surrogatepass"))


def _text(value: object) -> str:
    """A metadata value as the text stored and compared (unpaired surrogates, not encodable, become '?')."""
    return str(value).encode("utf-8", "replace").decode("utf-8")


def quoted(text: str) -> str:
    """A Milvus string literal for any text: a JSON string (Milvus unquotes it as Go does)."""
    return json.dumps(_text(text), ensure_ascii=False)


def filter_expression(where: Filter | None) -> str:
    """The Milvus boolean expression for `where` ("" when nothing filters); a row lacking a column never matches."""
    if where is None:
        return ""
    return " and ".join(
        f'{META}["{column_key(column)}"] in [{", ".join(quoted(v) for v in sorted(map(_text, allowed)))}]'
        for column, allowed in sorted(where.wanted.items()))


def stored_metadata(metadata: Mapping[str, object]) -> dict[str, str]:
    """One row's metadata as stored in the `meta` JSON field."""
    return {column_key(column): _text(value) for column, value in metadata.items()}


def _one_line(text: str, limit: int = 240) -> str:
    line = " ".join(str(text).split())
    return line if len(line) <= limit else line[:limit - 1] + "…"


@contextmanager
def _milvus_errors(uri: str, doing: str) -> Iterator[None]:
    """Turn pymilvus/gRPC failures into a one-line MedSearchError."""
    import grpc
    from pymilvus.exceptions import MilvusException

    try:
        yield
    except MilvusException as error:
        if error.code == 2:  # pymilvus: server unreachable
            raise MedSearchError(f"Cannot reach the Milvus server at {uri}: is it running?") from error
        raise MedSearchError(f"Milvus could not {doing}: {_one_line(error.message)}") from error
    except grpc.RpcError as error:
        raise MedSearchError(f"Cannot reach the Milvus server at {uri}: is it running?") from error


def _connect(uri: str) -> MilvusClient:
    from pymilvus import MilvusClient

    with _milvus_errors(uri, "connect"):
        return MilvusClient(uri=uri, timeout=TIMEOUT)


def _schema(dim: int) -> CollectionSchema:
    from pymilvus import DataType, MilvusClient

    schema = MilvusClient.create_schema(auto_id=False, enable_dynamic_field=False)
    schema.add_field(ROW, DataType.INT64, is_primary=True)
    schema.add_field(VECTOR, DataType.FLOAT_VECTOR, dim=dim)
    schema.add_field(META, DataType.JSON)
    return schema


def milvus_index(asked: str, count: int, dim: int) -> dict:
    """The Milvus index for a `--vector-index` choice, with FAISS's parameters (`vectors`): HNSW M 32,
    efConstruction 80; IVF_PQ with nlist about 4·sqrt(rows) and 8-bit codes of `dim`'s largest divisor ≤ 48."""
    kind = choose_kind(asked, count)
    if kind == "hnsw":
        return {"index_type": "HNSW", "params": {"M": 32, "efConstruction": 80}}
    if kind == "ivfpq":
        nlist = int(min(max(4 * np.sqrt(max(count, 1)), 1), 65_536))
        m = next(m for m in (48, 32, 24, 16, 12, 8, 6, 4, 3, 2, 1) if dim % m == 0)
        return {"index_type": "IVF_PQ", "params": {"nlist": nlist, "m": m, "nbits": 8}}
    return dict(INDEX)


def _search_params(index: Mapping[str, Any], k: int) -> dict:
    """FAISS's search-time settings for the same index: efSearch HNSW_EF_SEARCH (at least 2k), nprobe 16."""
    if index["index_type"] == "HNSW":
        return {"ef": max(HNSW_EF_SEARCH, 2 * k)}
    if index["index_type"] == "IVF_PQ":
        return {"nprobe": min(16, index["params"]["nlist"])}
    return {}


def _index_params(index: Mapping[str, Any]) -> Any:
    from pymilvus import MilvusClient

    params = MilvusClient.prepare_index_params()
    params.add_index(field_name=VECTOR, index_type=index["index_type"], metric_type=METRIC,
                     params=dict(index["params"]))
    return params


def _check_name(name: str) -> None:
    if not NAME.fullmatch(name):
        raise MedSearchError(f"'{_one_line(name, 80)}' is not a Milvus collection name: use letters, digits "
                             "and _, starting with a letter or _ (medsearch.milvus.collection_name makes one).")


class MilvusStore:
    """A Milvus collection whose primary keys are chunk rows; see the module docstring."""

    kind: Literal["milvus"] = "milvus"

    def __init__(self, client: MilvusClient, uri: str, name: str, dim: int, index: Mapping[str, Any]) -> None:
        self._client, self.uri, self.name, self.dim, self.index = client, uri, name, dim, dict(index)

    @classmethod
    def create(cls, uri: str | None, name: str, dim: int, index: str = "flat", count: int = 0) -> MilvusStore:
        """A new, empty, loaded collection `name` (an existing one of that name is dropped first), with the
        vector index `index` (flat, hnsw, ivfpq, or auto for about `count` rows)."""
        uri = milvus_uri(uri)
        _check_name(name)
        if not 0 < int(dim) <= 32_768:
            raise MedSearchError(f"Milvus vectors have 1 to 32768 dimensions, not {dim}.")
        chosen = milvus_index(index, count, int(dim))
        client = _connect(uri)
        with _milvus_errors(uri, f"create the collection {name}"):
            if client.has_collection(name):
                client.drop_collection(name)
            client.create_collection(name, schema=_schema(int(dim)), index_params=_index_params(chosen),
                                     consistency_level=CONSISTENCY)
        return cls(client, uri, name, int(dim), chosen)

    @classmethod
    def open(cls, described: Mapping[str, Any]) -> MilvusStore:
        """The collection `describe()` described, loaded for search."""
        try:
            uri, name, dim = milvus_uri(str(described["uri"])), str(described["collection"]), int(described["dim"])
        except (KeyError, TypeError, ValueError):
            raise MedSearchError("The stored description of a Milvus vector store is incomplete.") from None
        client = _connect(uri)
        with _milvus_errors(uri, f"open the collection {name}"):
            if not client.has_collection(name):
                raise MedSearchError(f"The Milvus collection {name} is missing at {uri}: rebuild the vectors.")
            _check_dim(client.describe_collection(name), name, dim)
            client.load_collection(name)
        return cls(client, uri, name, dim, described.get("index") or INDEX)

    def describe(self) -> dict:
        """What `open` needs (JSON-able; kept in the collection manifest)."""
        return {"kind": self.kind, "uri": self.uri, "collection": self.name, "dim": self.dim,
                "index": dict(self.index), "metric": METRIC}

    def add(self, rows: np.ndarray, vectors: np.ndarray, metadata: Sequence[Mapping[str, object]] = ()) -> None:
        """Insert vectors under their (new, unique) rows, with each row's metadata; BATCH rows per call.
        Milvus does not refuse a primary key it already holds (it would keep both): never reuse rows."""
        rows, vectors = np.asarray(rows, dtype=np.int64).reshape(-1), np.asarray(vectors, dtype=np.float32)
        metadata = list(metadata) or [{}] * len(rows)
        _check_batch(rows, vectors, metadata, self.dim)
        for start in range(0, len(rows), BATCH):
            end = start + BATCH
            batch = [{ROW: row, VECTOR: vector, META: stored_metadata(meta)} for row, vector, meta
                     in zip(rows[start:end].tolist(), vectors[start:end].tolist(), metadata[start:end])]
            with _milvus_errors(self.uri, f"add vectors to {self.name}"):
                self._client.insert(self.name, batch, timeout=TIMEOUT)

    def remove(self, rows: np.ndarray) -> None:
        """Delete these rows (rows not stored are ignored)."""
        ids = np.unique(np.asarray(rows, dtype=np.int64).reshape(-1)).tolist()
        for start in range(0, len(ids), BATCH):
            with _milvus_errors(self.uri, f"remove vectors from {self.name}"):
                self._client.delete(self.name, ids=ids[start:start + BATCH], timeout=TIMEOUT)

    def search(self, queries: np.ndarray, k: int, where: Filter | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Scores (float32) and rows (int64), each (len(queries), k), best first, padded with 0 / -1;
        only rows whose metadata matches `where` (filtered inside Milvus)."""
        queries = np.atleast_2d(np.asarray(queries, dtype=np.float32))
        if queries.shape[1] != self.dim:
            raise ValueError(f"queries have {queries.shape[1]} dimensions, the store {self.dim}")
        if k > MAX_K:
            raise MedSearchError(f"Milvus returns at most {MAX_K} results per query, not {k}.")
        k = max(int(k), 0)
        scores, found = np.zeros((len(queries), k), np.float32), np.full((len(queries), k), -1, np.int64)
        expression = filter_expression(where)
        for start in range(0, len(queries) if k else 0, QUERY_BATCH):
            for i, hits in enumerate(self._search(queries[start:start + QUERY_BATCH], k, expression), start):
                n = min(len(hits), k)
                scores[i, :n], found[i, :n] = hits.distances[:n], hits.ids[:n]
        return scores, found

    def vectors(self, rows: np.ndarray) -> np.ndarray:
        """The stored vectors of these rows, in their order."""
        ids = [int(r) for r in rows]
        with _milvus_errors(self.uri, f"read vectors of {self.name}"):
            found = {r[ROW]: r[VECTOR] for r in self._client.get(self.name, ids=ids, output_fields=[VECTOR],
                                                                timeout=TIMEOUT)}
        return np.asarray([found[i] for i in ids], dtype=np.float32).reshape(len(ids), self.dim)

    def _search(self, queries: np.ndarray, k: int, expression: str) -> list:
        with _milvus_errors(self.uri, f"search {self.name}"):
            return self._client.search(
                self.name, data=queries.tolist(), filter=expression, limit=k, output_fields=[],
                search_params={"metric_type": METRIC, "params": _search_params(self.index, k)}, anns_field=VECTOR,
                consistency_level=READ, timeout=TIMEOUT)

    def __len__(self) -> int:
        """Live (not removed) vectors."""
        return self._count(CONSISTENCY)

    def _count(self, consistency: str) -> int:
        with _milvus_errors(self.uri, f"count the vectors of {self.name}"):
            result = self._client.query(self.name, filter="", output_fields=["count(*)"],
                                        consistency_level=consistency, timeout=TIMEOUT)
        return int(result[0]["count(*)"])

    def flush(self) -> None:
        """Persist added and removed rows, and wait until searches (Bounded consistency) see them: call it
        once after a batch of changes, before readers are told of them (the manifest switch)."""
        with _milvus_errors(self.uri, f"flush {self.name}"):
            self._client.flush(self.name, timeout=TIMEOUT)
        expected, deadline = len(self), time.monotonic() + TIMEOUT
        while self._count(READ) != expected and time.monotonic() < deadline:
            time.sleep(0.1)

    def drop(self) -> None:
        """Delete the Milvus collection and everything in it."""
        with _milvus_errors(self.uri, f"drop the collection {self.name}"):
            self._client.drop_collection(self.name, timeout=TIMEOUT)


def _check_batch(rows: np.ndarray, vectors: np.ndarray, metadata: Sequence[Mapping[str, object]], dim: int) -> None:
    if vectors.shape != (len(rows), dim) and (len(rows) or vectors.size):
        raise ValueError(f"vectors must be ({len(rows)}, {dim}), not {getattr(vectors, 'shape', '?')}")
    if len(metadata) != len(rows):
        raise ValueError(f"{len(rows)} rows but {len(metadata)} metadata entries")
    if len(np.unique(rows)) != len(rows):
        raise ValueError("rows repeat: each vector needs its own row")


def _check_dim(description: Mapping[str, Any], name: str, dim: int) -> None:
    stored = [field.get("params", {}).get("dim") for field in description.get("fields", []) if field["name"] == VECTOR]
    if stored != [dim]:
        held = f"{stored[0]}-dimensional vectors" if len(stored) == 1 else "no MedSearch vectors"
        raise MedSearchError(f"The Milvus collection {name} holds {held}, not {dim}: rebuild the vectors.")
