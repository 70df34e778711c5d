"""Tiny models built in the tests (nothing is downloaded)."""

from collections.abc import Iterable
from pathlib import Path


def tiny_cross_encoder(folder: Path, words: Iterable[str], max_positions: int = 128) -> Path:
    """An untrained BERT cross-encoder (2 layers, 32 wide, one score per pair) whose vocabulary is `words`,
    reading at most `max_positions` tokens, saved in `folder`; the same arguments always give the same model."""
    import torch
    from transformers import BertConfig, BertForSequenceClassification, BertTokenizerFast

    torch.manual_seed(0)
    vocab = list(dict.fromkeys(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *words]))
    tokenizer = BertTokenizerFast(vocab={w: i for i, w in enumerate(vocab)}, model_max_length=max_positions)
    config = BertConfig(vocab_size=len(tokenizer), hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                        intermediate_size=64, max_position_embeddings=max_positions, hidden_dropout_prob=0.0,
                        attention_probs_dropout_prob=0.0, num_labels=1)
    BertForSequenceClassification(config).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


def tiny_bert(folder: Path, words: Iterable[str], max_positions: int = 128) -> Path:
    """An untrained BERT encoder (`BertModel`, 2 layers, 32 wide) whose vocabulary is `words` (each Chinese
    character of them a token too), saved in `folder`; the same arguments always give the same model."""
    import torch
    from transformers import BertConfig, BertModel, BertTokenizerFast

    torch.manual_seed(0)
    words = list(words)
    chinese = [c for w in words for c in w if "\u4e00" <= c <= "\u9fff"]  # BERT splits Chinese into characters
    vocab = list(dict.fromkeys(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *words, *chinese]))
    tokenizer = BertTokenizerFast(vocab={w: i for i, w in enumerate(vocab)}, model_max_length=max_positions)
    config = BertConfig(vocab_size=len(tokenizer), hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                        intermediate_size=64, max_position_embeddings=max_positions, hidden_dropout_prob=0.0,
                        attention_probs_dropout_prob=0.0)
    BertModel(config).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder
