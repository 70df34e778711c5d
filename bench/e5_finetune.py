"""Fine-tune multilingual-e5-small on Chinese patient-question / doctor-answer pairs; base vs tuned.

    python bench/e5_finetune.py [--neike ../shared/data/zh-dialogue-neike/neike.txt] [--home DIR]

neike.txt is converted with half of the questions in a train split (the BEIR `dev` qrels) and half
in `test`. The converted float32 copy of the bundled model is trained on the train pairs (InfoNCE
with in-batch negatives, one epoch), then BM25, the base model and the tuned model are evaluated
on the test split. One run; writes bench/e5_finetune.md.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

from medsearch.convert import convert
from medsearch.e5convert import ensure_converted
from medsearch.evaluate import evaluate, load_beir
from medsearch.training import TrainConfig, train

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--neike", type=Path, default=ROOT.parent / "shared" / "data" / "zh-dialogue-neike" / "neike.txt")
    parser.add_argument("--home", type=Path, default=Path(tempfile.mkdtemp(prefix="medsearch-ft-")))
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--lr", type=float, default=2e-5)
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "e5_finetune.md")
    args = parser.parse_args()
    folder = args.home / "neike-half"
    convert(args.neike, folder, dev_fraction=0.5)
    docs, eval_set = load_beir(folder)
    texts = {d.id: d.text for d in docs}
    train_q, train_qrels = eval_set.split("dev")
    pairs = [{"query": train_q[q], "positive": texts[d]} for q, rels in train_qrels.items() for d in rels]

    base = ensure_converted(args.home)
    tuned = args.home / ".models" / "multilingual-e5-small-neike-tuned"
    config = TrainConfig(base=str(base), epochs=args.epochs, batch_size=args.batch_size, learning_rate=args.lr, seed=13)
    card = train(pairs, config, tuned, progress=lambda s: print(f"step {s['step']}/{s['total']} loss {s['loss']:.3f}",
                                                                flush=True) if s["step"] % 10 == 0 else None)

    rows = [("BM25", evaluate(folder, "bm25", home=args.home)),
            ("e5-small base, dense", evaluate(folder, "dense", str(base), home=args.home)),
            ("e5-small tuned, dense", evaluate(folder, "dense", str(tuned), home=args.home)),
            ("e5-small tuned + BM25, hybrid (RRF)", evaluate(folder, "hybrid", str(tuned), home=args.home))]
    lines = ["# Fine-tuning multilingual-e5-small on Chinese Q/A pairs", "",
             f"One run, {time.strftime('%Y-%m-%d')}, 2 CPU cores. neike.txt: {len(pairs)} train pairs, "
             f"{rows[0][1]['queries']} test questions over {len(docs)} answers. Reproduce: `python bench/e5_finetune.py`.", "",
             f"Training: InfoNCE, {args.epochs} epoch(s), batch {args.batch_size}, lr {args.lr:g}, "
             f"{card['steps']} steps in {card['train_seconds']:.0f} s; loss {card['loss_start']:.3f} (first 10 steps) → "
             f"{card['loss_end']:.3f} (last 10).", "",
             "| retriever | nDCG@10 | MRR@10 | Recall@10 | Recall@100 |", "|---|---|---|---|---|"]
    lines += [f"| {name} | {r['ndcg@10']:.3f} | {r['mrr@10']:.3f} | {r['recall@10']:.3f} | {r['recall@100']:.3f} |"
              for name, r in rows]
    lines += ["", "```json", *(json.dumps({"row": n, **r}, ensure_ascii=False) for n, r in rows), "```", ""]
    args.out.write_text("\n".join(lines), encoding="utf-8")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
