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


def tiny_sentence_transformer(folder: Path, words: Iterable[str], prompts: dict[str, str] | None = None, *,
                              hidden: int = 32, seed: int = 0) -> Path:
    """An untrained sentence-transformers model (BERT, 2 layers, `hidden` wide, mean pooling) whose vocabulary is
    `words`, saved in `folder` with `prompts` in its config; the same arguments always give the same model."""
    import tempfile

    import torch
    from sentence_transformers import SentenceTransformer
    from sentence_transformers.sentence_transformer.modules import Pooling, Transformer
    from transformers import BertConfig, BertModel, BertTokenizerFast

    torch.manual_seed(seed)
    vocab = list(dict.fromkeys(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *words]))
    tokenizer = BertTokenizerFast(vocab={w: i for i, w in enumerate(vocab)}, model_max_length=64)
    config = BertConfig(vocab_size=len(tokenizer), hidden_size=hidden, num_hidden_layers=2, num_attention_heads=2,
                        intermediate_size=2 * hidden, max_position_embeddings=64)
    with tempfile.TemporaryDirectory() as bert:
        BertModel(config).save_pretrained(bert)
        tokenizer.save_pretrained(bert)
        transformer = Transformer(bert)
        model = SentenceTransformer(modules=[transformer, Pooling(hidden, "mean")], prompts=prompts, device="cpu")
        model.save(str(folder))
    return folder
