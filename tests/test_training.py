"""Training really learns: each loss falls, a static model learns Chinese from scratch, the CLI trains."""

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from medsearch.encoders import load_encoder
from medsearch.records import MedSearchError
from medsearch.training import (
    TrainConfig,
    TrainingCancelled,
    evaluate_models,
    fine_tune,
    load_triplets,
    split_held_out,
    train,
)

ROOT = Path(__file__).resolve().parents[1]

EN = [
    ("What lowers blood pressure?", "Salt reduction and antihypertensive drugs lower blood pressure.",
     "Gout is arthritis caused by uric acid crystals in a joint."),
    ("Is ceftriaxone safe in pregnancy?", "Cephalosporins are considered safe in pregnancy under medical advice.",
     "Influenza vaccination is advised every autumn for adults over 65."),
    ("How to spot a stroke", "Face drooping, arm weakness and speech difficulty are stroke signs.",
     "Metformin is first-line therapy for type 2 diabetes."),
    ("Treatment of asthma attacks", "Short-acting bronchodilator inhalers relieve asthma attacks.",
     "Give paracetamol for a child's fever and see a doctor if it lasts."),
    ("Does metformin treat diabetes?", "Metformin is first-line therapy for type 2 diabetes.",
     "Face drooping, arm weakness and speech difficulty are stroke signs."),
    ("Flu shot for the elderly", "Influenza vaccination is advised every autumn for adults over 65.",
     "Salt reduction and antihypertensive drugs lower blood pressure."),
    ("Fever in a toddler", "Give paracetamol for a child's fever and see a doctor if it lasts.",
     "Short-acting bronchodilator inhalers relieve asthma attacks."),
    ("What is gout?", "Gout is arthritis caused by uric acid crystals in a joint.",
     "Cephalosporins are considered safe in pregnancy under medical advice."),
]
TRIPLETS = [{"query": q, "positive": p, "negative": n} for q, p, n in EN]

ZH = [
    ("高血压吃什么药", "高血压患者可以服用降压药，如氨氯地平，并减少盐的摄入。"),
    ("糖尿病人能吃水果吗", "糖尿病患者血糖稳定时可以少量吃低糖水果，比如苹果。"),
    ("感冒发烧怎么办", "感冒发烧要多喝水休息，体温超过三十八度五可服退烧药。"),
    ("胃痛反酸是什么原因", "胃痛反酸常见于胃炎或胃溃疡，建议做胃镜检查。"),
    ("失眠怎么调理", "失眠可以规律作息，睡前不喝咖啡，必要时短期用助眠药。"),
    ("咳嗽有痰吃什么", "咳嗽有痰可以用化痰药，如氨溴索，多喝温水。"),
    ("头晕恶心是怎么回事", "头晕恶心可能是颈椎病、低血糖或耳石症引起的。"),
    ("心慌胸闷要做什么检查", "心慌胸闷建议做心电图和心脏彩超，排除心律失常。"),
    ("痛风能喝啤酒吗", "痛风患者不能喝啤酒，啤酒会升高尿酸诱发痛风发作。"),
    ("贫血吃什么补血", "缺铁性贫血要补铁，多吃红肉、动物肝脏，并服铁剂。"),
    ("腰疼是肾不好吗", "腰疼多数是腰肌劳损或腰椎间盘突出，不一定是肾病。"),
    ("便秘怎么办", "便秘要多吃蔬菜和粗粮，多喝水，适当运动。"),
    ("甲亢有什么症状", "甲亢常见心跳快、怕热多汗、体重下降和手抖。"),
    ("过敏性鼻炎怎么治", "过敏性鼻炎可以用抗组胺药和鼻喷激素，避免接触过敏原。"),
    ("孕妇能拔牙吗", "孕妇拔牙最好在孕中期进行，孕早期和晚期尽量避免。"),
    ("小孩拉肚子怎么办", "小孩腹泻要补充口服补液盐，防止脱水，必要时就医。"),
    ("尿酸高注意什么", "尿酸高要少吃海鲜和动物内脏，多喝水，控制体重。"),
    ("脂肪肝能治好吗", "轻度脂肪肝通过减重、戒酒和运动大多可以逆转。"),
    ("偏头痛怎么缓解", "偏头痛发作时在安静暗处休息，可服布洛芬止痛。"),
    ("湿疹反复怎么办", "湿疹要保湿，避免搔抓，必要时外用弱效激素药膏。"),
    ("骨质疏松吃什么钙片", "骨质疏松可以补钙和维生素D，如碳酸钙D3片。"),
    ("口腔溃疡老不好", "口腔溃疡反复发作可补充维生素B，超过两周不愈要检查。"),
    ("血脂高要吃药吗", "血脂高先控制饮食和运动，效果不好再用他汀类药物。"),
    ("颈椎病怎么锻炼", "颈椎病可以做米字操和游泳，避免长时间低头看手机。"),
]
ZH_PAIRS = [{"query": q, "positive": p} for q, p in ZH]


@pytest.fixture(scope="module")
def tiny_bert(tmp_path_factory) -> Path:
    """A random 1-layer BERT sentence-transformers folder with a vocabulary of the test texts' words."""
    from sentence_transformers import SentenceTransformer
    from sentence_transformers.sentence_transformer.modules import Pooling, Transformer
    from transformers import BertConfig, BertModel, BertTokenizerFast

    folder = tmp_path_factory.mktemp("tiny")
    words = sorted({w for t in TRIPLETS for text in t.values() for w in re.findall(r"\w+|[^\w\s]", text.lower())})
    (folder / "vocab.txt").write_text("\n".join(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *words]))
    tokenizer = BertTokenizerFast(str(folder / "vocab.txt"))
    config = BertConfig(vocab_size=len(words) + 5, hidden_size=32, num_hidden_layers=1, num_attention_heads=2,
                        intermediate_size=64, max_position_embeddings=64)
    BertModel(config).save_pretrained(folder / "hf")
    tokenizer.save_pretrained(folder / "hf")
    transformer = Transformer(str(folder / "hf"), max_seq_length=64)
    SentenceTransformer(modules=[transformer, Pooling(32, "mean")], device="cpu").save(str(folder / "st"))
    return folder / "st"


@pytest.mark.parametrize("loss", ["infonce", "margin", "contrastive"])
def test_each_loss_falls(tiny_bert, tmp_path, loss):
    steps = []
    config = TrainConfig(base=str(tiny_bert), loss=loss, epochs=10, batch_size=4, learning_rate=3e-3)
    card = train(TRIPLETS, config, tmp_path / "out", progress=steps.append)
    losses = [s["loss"] for s in steps]
    per_epoch = 4 if loss == "contrastive" else 2  # contrastive reads (query, positive) and (query, negative) pairs
    total = per_epoch * 10
    assert len(steps) == total and steps[-1]["step"] == steps[-1]["total"] == total and steps[-1]["epoch"] == 10
    assert all(s["eta_s"] >= 0 for s in steps) and steps[-1]["eta_s"] == 0
    assert np.mean(losses[-4:]) < np.mean(losses[:4])
    assert card["loss"] == loss and (tmp_path / "out" / "medsearch.json").is_file()
    assert load_encoder(str(tmp_path / "out")).encode(["gout"], query=True).shape == (1, 32)


def test_static_model_learns_chinese_from_scratch(tmp_path):
    def top1(folder: Path) -> float:
        encoder = load_encoder(str(folder))
        scores = encoder.encode([q for q, _ in ZH], query=True) @ encoder.encode([p for _, p in ZH], query=False).T
        return float((scores.argmax(axis=1) == np.arange(len(ZH))).mean())

    untrained = TrainConfig(base="static", epochs=1, batch_size=8, learning_rate=1e-9, static_dim=64)
    trained = TrainConfig(base="static", epochs=15, batch_size=8, static_dim=64)
    train(ZH_PAIRS, untrained, tmp_path / "untrained")
    card = train(ZH_PAIRS, trained, tmp_path / "trained")
    assert top1(tmp_path / "trained") >= 0.9 > top1(tmp_path / "untrained")
    assert "zh" in card["languages"] and "en" not in card["languages"] and card["loss_end"] < card["loss_start"]
    assert load_encoder(str(tmp_path / "trained")).languages == frozenset(card["languages"])


def test_held_out_split_keeps_queries_apart():
    triplets = [{"query": f"q{i % 10}", "positive": f"p{i}", "negative": None} for i in range(40)]
    train_part, held = split_held_out(triplets, 0.3, seed=1)
    assert len(train_part) + len(held) == 40
    assert {t["query"] for t in held} and not {t["query"] for t in held} & {t["query"] for t in train_part}
    assert len({t["query"] for t in held}) == 3
    assert split_held_out(triplets, 0.0)[1] == []


def test_fine_tune_compares_static_with_bm25(tmp_path):
    card = fine_tune(ZH_PAIRS, TrainConfig(base="static", epochs=3, batch_size=8, held_out=0.25, name="zh"),
                     tmp_path / "m")
    assert card["baseline"] == "bm25" and card["note"] == "static_vs_bm25" and card["n_held_out"] == 6
    assert set(card["metrics"]) == {"base", "tuned"} and set(card["metrics"]["tuned"]) == {"ndcg@10", "mrr@10", "recall@10"}
    assert card["wins"] + card["losses"] + card["ties"] == 6
    assert (card["warning"] != "") == (card["metrics"]["tuned"]["ndcg@10"] < card["metrics"]["base"]["ndcg@10"])
    assert json.loads((tmp_path / "m" / "card.json").read_text())["name"] == "zh"
    train_part, held = split_held_out(ZH_PAIRS, 0.25, 42)  # the card lists what it trained on, for Compare's warning
    assert card["train_queries"] == sorted({t["query"] for t in train_part}) and not set(card["train_queries"]) & {
        t["query"] for t in held}


def test_evaluate_models_warns_when_tuned_is_worse(tiny_bert):
    report = evaluate_models(TRIPLETS, TrainConfig(base="minilm"), tiny_bert)  # a random model is worse than MiniLM
    assert report["metrics"]["base"]["ndcg@10"] > report["metrics"]["tuned"]["ndcg@10"]
    assert report["warning"] == "worse" and report["losses"] > 0 and report["n_passages"] == 8


def test_cancel_saves_nothing(tmp_path):
    calls = []
    with pytest.raises(TrainingCancelled):
        train(ZH_PAIRS, TrainConfig(base="static", epochs=5, batch_size=4), tmp_path / "m",
              should_stop=lambda: calls.append(1) or len(calls) > 3)
    assert not (tmp_path / "m").exists() and not list(tmp_path.iterdir())


def test_load_triplets_jsonl_csv_and_errors(tmp_path):
    good = tmp_path / "t.jsonl"
    good.write_text("\n".join(json.dumps(t) for t in ZH_PAIRS[:3]), encoding="utf-8")
    assert load_triplets(good)[0] == {"query": ZH[0][0], "positive": ZH[0][1], "negative": None}
    csv_file = tmp_path / "t.csv"
    csv_file.write_text("query,positive,negative\na,b,c\nd,e,\n", encoding="utf-8")
    assert load_triplets(csv_file)[1] == {"query": "d", "positive": "e", "negative": None}
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"query": "a", "positive": "b"}\n{"query": "c", "positive": "d"}\n{"query": "e"}\n')
    with pytest.raises(MedSearchError, match=r"bad.jsonl: record 3 needs a non-empty 'query' and 'positive'"):
        load_triplets(bad)


def _cli(*args: str, home: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "MEDSEARCH_HOME": str(home)}
    return subprocess.run([sys.executable, "-m", "medsearch", "train", *args], capture_output=True, text=True,
                          env=env, cwd=ROOT, timeout=120)


def test_cli_trains_and_registers(tmp_path):
    data = tmp_path / "zh.jsonl"
    data.write_text("\n".join(json.dumps(t, ensure_ascii=False) for t in ZH_PAIRS), encoding="utf-8")
    done = _cli("--triplets", str(data), "--base", "static", "--epochs", "3", "--batch-size", "8",
                "--name", "zh-cli", home=tmp_path / "home")
    assert done.returncode == 0, done.stderr
    assert "saved zh-cli" in done.stdout and "bm25" in done.stdout and "tuned" in done.stdout
    assert (tmp_path / "home" / ".models" / "finetuned" / "zh-cli" / "card.json").is_file()


def test_cli_bad_triplets_file_is_one_line_error(tmp_path):
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"query": "a", "positive": "b"}\nnot json\n')
    done = _cli("--triplets", str(bad), "--base", "static", "--out", str(tmp_path / "m"), home=tmp_path)
    assert done.returncode == 1
    assert done.stderr.strip().count("\n") == 0 and "bad.jsonl: invalid JSON on line 2" in done.stderr


def test_a_batch_never_holds_the_same_text_twice(tiny_bert, tmp_path, monkeypatch):
    """Mined triplets share their positive (three rows per query, one per hard negative), so a random batch of 8
    out of these 24 rows almost surely holds some positive twice, once as a row's positive and once as another
    row's in-batch negative (P(no repeat) = 3^8 / C(24, 8) < 0.01); sentence-transformers' NO_DUPLICATES
    batches never do, and still read every row in each epoch."""
    from sentence_transformers.base.data_collator import BaseDataCollator

    batches = []
    collate = BaseDataCollator.__call__

    def spy(self, features):
        batches.append(features)
        return collate(self, features)

    monkeypatch.setattr(BaseDataCollator, "__call__", spy)
    rows = [{"query": q, "positive": p, "negative": f"Leaflet {i}-{k}: {n}"} for i, (q, p, n) in enumerate(EN)
            for k in range(3)]
    assert len(rows) == 24 and len({r["positive"] for r in rows}) == 8
    train(rows, TrainConfig(base=str(tiny_bert), epochs=2, batch_size=8), tmp_path / "out")
    assert sum(len(batch) for batch in batches) == 48  # every row, in each of the two epochs
    for batch in batches:
        positives = [row["positive"] for row in batch]
        assert len(set(positives)) == len(positives)
        texts = [text for row in batch for text in row.values() if isinstance(text, str)]
        assert len(set(texts)) == len(texts)  # nor a positive as another row's negative, nor a query twice


def test_dpr_family_trains_a_query_and_a_passage_encoder(tiny_bert, tmp_path):
    steps = []
    config = TrainConfig(base=str(tiny_bert), family="dpr", epochs=10, batch_size=4, learning_rate=3e-3)
    card = train(TRIPLETS, config, tmp_path / "dpr", progress=steps.append)
    assert card["family"] == "dpr" and len(steps) == 20
    assert np.mean([s["loss"] for s in steps[-4:]]) < np.mean([s["loss"] for s in steps[:4]])
    modules = json.loads((tmp_path / "dpr" / "modules.json").read_text())
    assert [m["type"].rsplit(".", 1)[-1] for m in modules] == ["Router"]
    base, tuned = load_encoder(str(tiny_bert)), load_encoder(str(tmp_path / "dpr"))
    text = ["What is gout?"]
    assert np.allclose(base.encode(text, query=True), base.encode(text, query=False), atol=1e-6)
    assert not np.allclose(tuned.encode(text, query=True), tuned.encode(text, query=False), atol=1e-3)  # two encoders now
    queries = tuned.encode([t["query"] for t in TRIPLETS], query=True)
    positives, negatives = (tuned.encode([t[side] for t in TRIPLETS], query=False) for side in ("positive", "negative"))
    assert np.mean((queries * positives).sum(1) > (queries * negatives).sum(1)) >= 0.75


def test_unknown_family_is_one_line_error(tiny_bert, tmp_path):
    with pytest.raises(MedSearchError, match=r"^Unknown model family 'colbert2': choose one of bi-encoder, dpr, "
                                             r"cross-encoder, colbert\.$"):
        fine_tune(TRIPLETS, TrainConfig(base=str(tiny_bert), family="colbert2"), tmp_path / "x")
    with pytest.raises(MedSearchError, match=r"^'colbert' is not an embedding model family"):
        train(TRIPLETS, TrainConfig(base=str(tiny_bert), family="colbert"), tmp_path / "x")
