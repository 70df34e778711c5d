"""Fine-tuning in MedSearch: MiniLM on English MedQuAD, and a static model from scratch on Chinese neike.

    python bench/finetune.py [--data ../shared/data] [--home DIR] [--max-pairs 1000] [--max-seq-length 128]

Each data set is converted to a BEIR folder with half of its questions in a train split (`dev`) and
half in `test`. (b) a static model is trained from nothing on the neike train pairs (vocabulary from
all neike answers); (a) all-MiniLM-L6-v2 is fine-tuned on the MedQuAD train pairs (InfoNCE, one
epoch; pairs capped and texts truncated to keep it near 10 minutes on 2 cores). Both are evaluated on
the test split next to BM25 and fused with BM25 (RRF, and `auto`). A fifth of the train questions is
kept out of training: it is the dev split `auto` tunes its fusion on, so the fusion is chosen on
questions the model has not seen. One run; writes bench/finetune.md.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

from medsearch.convert import convert
from medsearch.evaluate import evaluate, load_beir
from medsearch.training import TrainConfig, train

ROOT = Path(__file__).resolve().parents[1]
COLUMNS = ("ndcg@10", "mrr@10", "recall@10", "recall@100")


def train_pairs(folder: Path, limit: int) -> tuple[list[dict], list[str]]:
    """(question → answer pairs of the dev split but its last fifth, capped at `limit`; all passages).

    The dev qrels file is rewritten to that last fifth: `auto` tunes its fusion on unseen questions.
    """
    docs, eval_set = load_beir(folder)
    texts = {d.id: d.text for d in docs}
    queries, qrels = eval_set.split("dev")
    ids = sorted(qrels)
    train_ids, tune_ids = ids[: len(ids) * 4 // 5], ids[len(ids) * 4 // 5 :]
    (folder / "qrels" / "dev.tsv").write_text(
        "query-id\tcorpus-id\tscore\n" + "".join(f"{q}\t{d}\t{g}\n" for q in tune_ids for d, g in qrels[q].items()),
        encoding="utf-8")
    pairs = [{"query": queries[q], "positive": texts[d]} for q in train_ids for d in qrels[q]]
    return pairs[:limit], list(texts.values())


def experiment(folder: Path, config: TrainConfig, label: str, limit: int, home: Path) -> tuple[list, dict, int]:
    """Train on the dev pairs, then BM25, base, tuned and tuned + BM25 on the test split."""
    pairs, corpus = train_pairs(folder, limit)
    out = home / ".models" / f"bench-{folder.name}-{config.base}"
    log = lambda s: print(f"{label} step {s['step']}/{s['total']} loss {s['loss']:.3f}", flush=True) \
        if s["step"] % 20 == 0 or s["step"] == s["total"] else None  # noqa: E731
    card = train(pairs, config, out, corpus=corpus, progress=log)
    rows = [("BM25", evaluate(folder, "bm25", home=home))]
    if config.base != "static":
        rows.append((f"{label} base, dense", evaluate(folder, "dense", config.base, home=home)))
    rows += [(f"{label} tuned, dense", evaluate(folder, "dense", str(out), home=home)),
             (f"{label} tuned + BM25, hybrid (RRF)", evaluate(folder, "hybrid", str(out), home=home)),
             (f"{label} tuned + BM25, auto (fusion chosen on held-out train questions)",
              evaluate(folder, "auto", str(out), home=home))]
    return rows, card, len(pairs)


def table(rows: list) -> list[str]:
    lines = ["| retriever | " + " | ".join(COLUMNS) + " |", "|---" * (len(COLUMNS) + 1) + "|"]
    return lines + [f"| {name} | " + " | ".join(f"{r[c]:.3f}" for c in COLUMNS) + " |" for name, r in rows]


def section(title: str, rows: list, card: dict, n_pairs: int, note: str) -> list[str]:
    return [f"## {title}", "", note, "",
            f"Training: {card['loss']}, {card['epochs']} epoch(s), batch {card['batch_size']}, lr {card['learning_rate']:g}, "
            f"{n_pairs} pairs, {card['steps']} steps in **{card['train_seconds']:.0f} s**; loss {card['loss_start']:.3f} "
            f"(first 10 steps) → {card['loss_end']:.3f} (last 10).", "", *table(rows), "",
            "```json", *(json.dumps({"row": n, **r}, ensure_ascii=False) for n, r in rows), "```", ""]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data")
    parser.add_argument("--home", type=Path, default=Path(tempfile.mkdtemp(prefix="medsearch-ft-")))
    parser.add_argument("--max-pairs", type=int, default=1000, help="cap on the English (MiniLM) train pairs")
    parser.add_argument("--static-epochs", type=int, default=5)
    parser.add_argument("--max-seq-length", type=int, default=128, help="MiniLM training truncation")
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "finetune.md")
    args = parser.parse_args()
    if not args.data.is_dir():
        print(f"skipped: shared data not found at {args.data}")
        return
    medquad, neike = args.home / "medquad-half", args.home / "neike-half"
    convert(args.data / "medquad-dev", medquad, dev_fraction=0.5)
    convert(args.data / "zh-dialogue-neike" / "neike.txt", neike, dev_fraction=0.5)
    docs = {name: len(load_beir(folder)[0]) for name, folder in (("medquad", medquad), ("neike", neike))}
    lines = ["# Fine-tuning: a static model from scratch on Chinese, MiniLM on English", "",
             f"One run, {time.strftime('%Y-%m-%d')}, 2 CPU cores, no GPU. Reproduce: `python bench/finetune.py`. "
             "Each data set is split by question: half the questions train, the other half test.", ""]
    chinese = experiment(neike, TrainConfig(base="static", epochs=args.static_epochs, batch_size=64), "static",
                         10**9, args.home)
    lines += section("(b) static model from scratch on neike (Chinese)", *chinese,
                     f"neike.txt: {chinese[2]} train pairs, {chinese[0][0][1]['queries']} test questions over "
                     f"{docs['neike']} answers. Vocabulary: WordPiece with one token per Chinese character, "
                     "learnt from the train pairs and all answers; 256-dim StaticEmbedding, no download.")
    args.out.write_text("\n".join(lines), encoding="utf-8")
    english = experiment(medquad, TrainConfig(base="minilm", max_seq_length=args.max_seq_length), "MiniLM",
                         args.max_pairs, args.home)
    lines += section("(a) all-MiniLM-L6-v2 fine-tuned on MedQuAD (English)", *english,
                     f"MedQuAD: {english[2]} train pairs (capped at {args.max_pairs}), {english[0][0][1]['queries']} "
                     f"test questions over {docs['medquad']} answers; training truncates texts to "
                     f"{args.max_seq_length} tokens.")
    args.out.write_text("\n".join(lines), encoding="utf-8")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
