"""BM25 query throughput: medsearch (bm25s) against the rank_bm25 reference, on neike.txt.

    python bench/bm25.py [--neike ../shared/data/zh-dialogue-neike/neike.txt] [--queries 300]

Both sides get the same pre-tokenised corpus and queries (jieba + our tokenizer) and the same BM25
variant (Robertson / BM25Okapi, k1 = 1.5, b = 0.75), so the timing compares scoring and top-10
selection only. Reports queries per second for each, their ratio (one run), and top-10 agreement.
Writes bench/bm25.md.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import rank_bm25

from medsearch.convert import convert
from medsearch.evaluate import load_beir
from medsearch.retrieval import ChunkTable
from medsearch.sparse import BM25Retriever
from medsearch.text import Tokenizer

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--neike", type=Path, default=ROOT.parent / "shared" / "data" / "zh-dialogue-neike" / "neike.txt")
    parser.add_argument("--queries", type=int, default=300)
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "bm25.md")
    args = parser.parse_args()

    import tempfile

    folder = Path(tempfile.mkdtemp()) / "neike"
    convert(args.neike, folder)
    docs, eval_set = load_beir(folder)
    tokenizer = Tokenizer()
    corpus = tokenizer.many(d.text for d in docs)
    queries = [tokenizer(q) for q in list(eval_set.queries.values())[: args.queries]]
    table = ChunkTable([d.id for d in docs], [d.id for d in docs])

    ours = BM25Retriever.build(corpus, table, tokenizer, method="robertson", k1=1.5, b=0.75)
    reference = rank_bm25.BM25Okapi(corpus, k1=1.5, b=0.75)

    start = time.perf_counter()
    ours_top = [np.argsort(-ours.scores(q))[:10] for q in queries]
    ours_s = time.perf_counter() - start
    start = time.perf_counter()
    ref_top = [np.argsort(-reference.get_scores(q))[:10] for q in queries]
    ref_s = time.perf_counter() - start

    agreement = np.mean([len(set(a) & set(b)) / 10 for a, b in zip(ours_top, ref_top)])
    ours_qps, ref_qps = len(queries) / ours_s, len(queries) / ref_s
    lines = [
        "# BM25 throughput: medsearch (bm25s) vs rank_bm25", "",
        f"Corpus: neike.txt, {len(docs)} answers; {len(queries)} patient questions; one run, "
        f"{time.strftime('%Y-%m-%d')}. Reproduce: `python bench/bm25.py`.", "",
        "| implementation | queries/s |", "|---|---|",
        f"| medsearch BM25 (bm25s, Robertson) | {ours_qps:,.0f} |",
        f"| rank_bm25 BM25Okapi | {ref_qps:,.1f} |", "",
        f"**Speed-up: {ours_qps / ref_qps:,.0f}x** (target ≥ 100x). Top-10 agreement: {agreement:.1%}.", "",
    ]
    args.out.write_text("\n".join(lines), encoding="utf-8")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
