"""Time one epoch of fine-tuning all-MiniLM-L6-v2 on 4,000 question/answer pairs (2 CPU cores).

    python bench/finetune_time.py [--data ../shared/data] [--pairs 4000] [--max-seq-length 128]

Pairs come from the shared MedQuAD (English) and neike.txt (Chinese) question/answer data; only the
time matters here (quality is in bench/finetune.md). One run; writes bench/finetune_time.md.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from medsearch.convert import convert
from medsearch.evaluate import load_beir
from medsearch.training import TrainConfig, train

ROOT = Path(__file__).resolve().parents[1]


def qa_pairs(folder: Path) -> list[dict]:
    """Every (question, relevant answer) pair of a BEIR folder."""
    docs, eval_set = load_beir(folder)
    texts = {d.id: d.text for d in docs}
    return [{"query": eval_set.queries[q], "positive": texts[d]}
            for qrels in eval_set.qrels.values() for q, rels in qrels.items() for d in rels]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data")
    parser.add_argument("--pairs", type=int, default=4000)
    parser.add_argument("--max-seq-length", type=int, default=128)
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "finetune_time.md")
    args = parser.parse_args()
    if not args.data.is_dir():
        print(f"skipped: shared data not found at {args.data}")
        return
    work = Path(tempfile.mkdtemp(prefix="medsearch-time-"))
    convert(args.data / "medquad-dev", work / "medquad")
    convert(args.data / "zh-dialogue-neike" / "neike.txt", work / "neike")
    pairs = (qa_pairs(work / "medquad") + qa_pairs(work / "neike"))[: args.pairs]
    config = TrainConfig(base="minilm", max_seq_length=args.max_seq_length)
    start = time.perf_counter()
    card = train(pairs, config, work / "model", progress=lambda s: print(
        f"step {s['step']}/{s['total']} {time.perf_counter() - start:.0f} s", flush=True) if s["step"] % 25 == 0 else None)
    seconds = time.perf_counter() - start
    report = ["# Fine-tuning time: all-MiniLM-L6-v2, one epoch", "",
              f"One run, {time.strftime('%Y-%m-%d')}, 2 CPU cores, no GPU. Reproduce: `python bench/finetune_time.py`.", "",
              f"{len(pairs)} pairs (MedQuAD + neike.txt questions with their answers), InfoNCE, batch "
              f"{config.batch_size}, lr {config.lr():g}, texts truncated to {args.max_seq_length} tokens: "
              f"{card['steps']} steps in **{seconds:.0f} s ({seconds / 60:.1f} min)**, target ≤ 10 min; "
              f"loss {card['loss_start']:.3f} → {card['loss_end']:.3f}.", ""]
    args.out.write_text("\n".join(report), encoding="utf-8")
    print("\n".join(report))


if __name__ == "__main__":
    main()
