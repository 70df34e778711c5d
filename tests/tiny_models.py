"""Tiny models built in the tests (nothing is downloaded); the same arguments always give the same model."""

from collections.abc import Iterable
from pathlib import Path


def _bert(words: Iterable[str], max_positions: int, hidden: int, seed: int, **config: int):
    """(tokenizer, config) of a 2-layer BERT `hidden` wide whose vocabulary is `words` and each Chinese character
    in them (BERT splits Chinese into characters); torch seeded with `seed` for the weights made next."""
    import torch
    from transformers import BertConfig, BertTokenizerFast

    torch.manual_seed(seed)
    words = list(words)
    chinese = [c for w in words for c in w if "\u4e00" <= c <= "\u9fff"]
    vocab = list(dict.fromkeys(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *words, *chinese]))
    tokenizer = BertTokenizerFast(vocab={w: i for i, w in enumerate(vocab)}, model_max_length=max_positions)
    return tokenizer, BertConfig(vocab_size=len(tokenizer), hidden_size=hidden, num_hidden_layers=2,
                                 num_attention_heads=2, intermediate_size=2 * hidden, max_position_embeddings=max_positions,
                                 hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0, **config)


def tiny_cross_encoder(folder: Path, words: Iterable[str], max_positions: int = 128) -> Path:
    """An untrained BERT cross-encoder (one score per pair) reading at most `max_positions` tokens, saved in `folder`."""
    from transformers import BertForSequenceClassification

    tokenizer, config = _bert(words, max_positions, 32, 0, num_labels=1)
    BertForSequenceClassification(config).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


def tiny_bert(folder: Path, words: Iterable[str], max_positions: int = 128, *, hidden: int = 32, seed: int = 0) -> Path:
    """An untrained BERT encoder (`BertModel`) saved in `folder`."""
    from transformers import BertModel

    tokenizer, config = _bert(words, max_positions, hidden, seed)
    BertModel(config).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


def tiny_sentence_transformer(folder: Path, words: Iterable[str], prompts: dict[str, str] | None = None, *,
                              hidden: int = 32, seed: int = 0) -> Path:
    """An untrained sentence-transformers model (`tiny_bert`, mean pooling, 64 tokens) saved in `folder` with
    `prompts` in its config."""
    import tempfile

    from sentence_transformers import SentenceTransformer
    from sentence_transformers.sentence_transformer.modules import Pooling, Transformer

    with tempfile.TemporaryDirectory() as bert:
        transformer = Transformer(str(tiny_bert(Path(bert), words, 64, hidden=hidden, seed=seed)))
        model = SentenceTransformer(modules=[transformer, Pooling(hidden, "mean")], prompts=prompts, device="cpu")
        model.save(str(folder))
    return folder
