"""Abstention, measured: how often answers say "not found" for unanswerable questions, and answer the others.

    python bench/abstention.py [--shared ../shared/data] [--home DIR] [--sample 200] [--out bench/abstention.md]
    python bench/abstention.py --defaults      # the demo calibrations that `medsearch.relevance.DEFAULTS` holds

Each question goes through `rag.ask` with the offline extractive generator (5 passages, what the Answers page
does); it counts as answered unless the answer is "not found in the sources". Answerable questions: the demo's
40 judged queries (the demo calibrates on these same queries: in-sample), and a sample of the test split of
each shared dev set (calibrated on its dev split: held out). Unanswerable questions: the 40 written for this
in `data/demo/unanswerable.jsonl` (20 zh + 20 en: invented drugs and diseases, questions outside medicine, and
real medical topics the demo does not cover). The shared sets cover far more medicine (MedQuAD answers
glaucoma and scabies), so there only the invented and off-topic ones count as unanswerable.
"""

from __future__ import annotations

import argparse
import json
import random
import tempfile
import time
from pathlib import Path

from medsearch.collection import BuildOptions, Collection
from medsearch.convert import convert
from medsearch.demo import DEMO_DIR, ensure_demo
from medsearch.evaluate import load_beir
from medsearch.grounding import NOT_FOUND
from medsearch.modelref import MINILM
from medsearch.rag import ask, generator_for
from medsearch.relevance import calibrate_on

ROOT = Path(__file__).resolve().parents[1]
SETS = {"neike": "zh-dialogue-neike/neike.txt", "pubmedqa": "pubmedqa-dev/pqal_dev.json", "medquad": "medquad-dev"}
ANYWHERE = ("fictional", "off_topic")  # unanswerable by any medical corpus


def unanswerable() -> list[dict]:
    with (DEMO_DIR / "unanswerable.jsonl").open(encoding="utf-8") as lines:
        return [json.loads(line) for line in lines if line.strip()]


def answered(collection: Collection, questions: list[str]) -> list[bool]:
    generator = generator_for(collection, "extractive")
    return [ask(collection, q, generator).text not in NOT_FOUND.values() for q in questions]


def measure(name: str, collection: Collection, answerable: list[str], kinds: tuple[str, ...]) -> dict:
    cal = collection.calibration()
    rows = [u for u in unanswerable() if u["metadata"]["kind"] in kinds]
    start = time.perf_counter()
    ok = answered(collection, answerable)
    said = answered(collection, [u["text"] for u in rows])
    per_lang = {lang: [not s for s, u in zip(said, rows) if u["metadata"]["lang"] == lang] for lang in ("zh", "en")}
    return {"set": name, "model": collection.default_model, "calibration": cal.to_dict() if cal else None,
            "answerable": len(ok), "answered": round(sum(ok) / max(len(ok), 1), 3),
            "unanswerable": len(rows), "abstained": round(sum(not s for s in said) / max(len(rows), 1), 3),
            "abstained_zh": f"{sum(per_lang['zh'])}/{len(per_lang['zh'])}",
            "abstained_en": f"{sum(per_lang['en'])}/{len(per_lang['en'])}",
            "missed": [u["text"] for s, u in zip(said, rows) if s],
            "seconds": round(time.perf_counter() - start, 1)}


def shared_collection(name: str, source: Path, home: Path) -> Collection:
    if Collection.exists(name, home):
        return Collection.open(name, home)
    folder = home / "beir" / name
    if not folder.exists():
        convert(source, folder)
    documents, eval_set = load_beir(folder)
    return Collection.create(name, documents, BuildOptions(), home=home, eval_set=eval_set)


def defaults(home: Path) -> None:
    demo = ensure_demo(home)
    if MINILM not in demo.models:
        demo = demo.add_model(MINILM)
    for model in demo.models:
        print(model, calibrate_on(demo.retriever("dense", model), demo.eval_set))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shared", type=Path, default=ROOT.parent / "shared" / "data")
    parser.add_argument("--home", type=Path, default=None, help="where to build the collections (kept for reruns)")
    parser.add_argument("--sample", type=int, default=200, help="answerable test queries per shared set")
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "abstention.md")
    parser.add_argument("--defaults", action="store_true", help="print the demo calibrations and stop")
    args = parser.parse_args()
    home = args.home or Path(tempfile.mkdtemp(prefix="medsearch-abstention-"))
    if args.defaults:
        return defaults(home)
    demo = ensure_demo(home)
    rows = [measure("demo", demo, list(demo.eval_set.queries.values()), ("fictional", "off_topic", "uncovered"))]
    print(json.dumps(rows[-1], ensure_ascii=False), flush=True)
    for name, rel in SETS.items():
        if not (args.shared / rel).exists():
            continue
        collection = shared_collection(name, args.shared / rel, home)
        queries = list(collection.eval_set.split("test")[0].values())
        sample = random.Random(13).sample(queries, min(args.sample, len(queries)))
        rows.append(measure(name, collection, sample, ANYWHERE))
        print(json.dumps(rows[-1], ensure_ascii=False), flush=True)
    write_report(rows, args.out)


def write_report(rows: list[dict], out: Path) -> None:
    lines = ["# Abstention: unanswerable questions answered \"not found\", answerable ones still answered", "",
             f"One run on {time.strftime('%Y-%m-%d')}, 2 CPU cores, offline extractive answers from 5 passages. "
             "Reproduce: `python bench/abstention.py`. See the script's docstring for what each set holds.", "",
             "| set | model | calibrated on | low / high | answerable answered | unanswerable abstained | zh | en | s |",
             "|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        cal = r["calibration"] or {}
        source = f"{cal.get('queries')} judged queries ({cal.get('source')})" if cal else "-"
        lines.append(f"| {r['set']} | {r['model']} | {source} | {cal.get('low', '-')} / {cal.get('high', '-')} | "
                     f"{r['answered']:.3f} of {r['answerable']} | {r['abstained']:.3f} of {r['unanswerable']} | "
                     f"{r['abstained_zh']} | {r['abstained_en']} | {r['seconds']} |")
    lines += ["", "Unanswerable questions that still got an answer:", ""]
    lines += [f"- {r['set']}: {q}" for r in rows for q in r["missed"]] or ["- none"]
    lines += ["", "```json", *(json.dumps(r, ensure_ascii=False) for r in rows), "```", ""]
    out.write_text("\n".join(lines), encoding="utf-8")


if __name__ == "__main__":
    main()
