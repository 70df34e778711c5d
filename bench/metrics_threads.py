"""Metrics from 8 threads at once: a process-wide lock around ranx (what medsearch.metrics uses) vs numba's OpenMP layer.

    python bench/metrics_threads.py [--runs 3] [--queries 2000]

ranx's own "workqueue" layer aborts the process when two threads compute metrics at once, so the
two safe ways are measured: "omp" (the threading layer switched to OpenMP) and "lock" (workqueue,
with every ranx call behind one lock); "tbb" too when the `tbb` package is installed. Each way runs
in a fresh process: one warm-up call, 8 calls one after another, then 8 threads released together,
each computing five metrics over the same run. Writes bench/metrics_threads.md.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CHILD = """
import ctypes, json, os, random, sys, threading, time
mode, n = sys.argv[1], int(sys.argv[2])
if mode == "tbb":  # the pip wheel's library is not on numba's search path
    ctypes.CDLL(os.path.join(sys.prefix, "lib", "libtbb.so.12"), mode=ctypes.RTLD_GLOBAL)
import numba, ranx
numba.config.THREADING_LAYER = {"lock": "workqueue"}.get(mode, mode)
rng = random.Random(0)
qrels = ranx.Qrels({f"q{i}": {f"d{rng.randint(0, 500)}": 1 for _ in range(3)} for i in range(n)})
run = ranx.Run({f"q{i}": {f"d{rng.randint(0, 500)}": rng.random() for _ in range(100)} for i in range(n)})
metrics, lock = ["ndcg@10", "mrr@10", "recall@10", "recall@100", "map@100"], threading.Lock()
def once():
    if mode == "lock":
        with lock:
            return ranx.evaluate(qrels, run, metrics, make_comparable=True)
    return ranx.evaluate(qrels, run, metrics, make_comparable=True)
once()
start = time.perf_counter()
for _ in range(8):
    once()
sequential = time.perf_counter() - start
barrier = threading.Barrier(8)
def work():
    barrier.wait()
    once()
threads = [threading.Thread(target=work) for _ in range(8)]
start = time.perf_counter()
for t in threads: t.start()
for t in threads: t.join()
print(json.dumps({"layer": numba.threading_layer(), "sequential": sequential, "threads": time.perf_counter() - start}))
"""


def measure(mode: str, queries: int) -> dict:
    out = subprocess.run([sys.executable, "-c", CHILD, mode, str(queries)], capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--queries", type=int, default=2000)
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "metrics_threads.md")
    args = parser.parse_args()
    modes = ["omp", "lock"] + (["tbb"] if (Path(sys.prefix) / "lib" / "libtbb.so.12").exists() else [])
    results: dict[str, list[dict]] = {mode: [] for mode in modes}
    for _ in range(args.runs):  # interleaved, so that a busy moment of the machine hits every way alike
        for mode in modes:
            results[mode].append(measure(mode, args.queries))
    median = {mode: {key: statistics.median(r[key] for r in rows) for key in ("sequential", "threads")}
              for mode, rows in results.items()}
    lines = ["# Metrics from 8 threads at once: OpenMP layer vs a lock around ranx\n",
             f"{args.runs} runs per way, interleaved, {time.strftime('%Y-%m-%d')}, {args.queries:,} queries × 100 "
             f"documents, five metrics per call, 2 CPU cores. Reproduce: `python bench/metrics_threads.py`.\n",
             "| way | numba layer | 8 calls in a row (s, median) | 8 threads at once (s, median) | threads vs lock |",
             "|---|---|---|---|---|"]
    for mode, row in median.items():
        lines.append(f"| {mode} | {results[mode][0]['layer']} | {row['sequential']:.2f} | {row['threads']:.2f} | "
                     f"{row['threads'] / median['lock']['threads']:.2f}x |")
    lines.append("\nWithout either, ranx's workqueue layer aborts the process (SIGABRT) as soon as two threads "
                 "compute metrics at once (tests/test_threads.py). MedSearch holds the lock (medsearch/metrics.py): "
                 "the ways differ by about the noise between runs of this bench, code that launched numba's "
                 "workqueue layer first cannot undo a lock, and it needs no OpenMP or TBB runtime.")
    args.out.write_text("\n".join(lines) + "\n", encoding="utf-8")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
