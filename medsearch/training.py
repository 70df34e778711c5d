"""Fine-tuning a dense retriever on (query, positive passage) pairs with in-batch negatives.

The loss is InfoNCE (as sentence-transformers' MultipleNegativesRankingLoss): for a batch of
pairs, each query must pick its own passage out of all passages in the batch. A plain torch loop
keeps the dependencies to what sentence-transformers already needs.
"""

from __future__ import annotations

import random
import shutil
from collections.abc import Callable, Sequence
from pathlib import Path

from medsearch.encoders import family_prefixes
from medsearch.records import MedSearchError

StepProgress = Callable[[int, int, float], None]


def finetune(base: str | Path, pairs: Sequence[tuple[str, str]], out: Path, *, epochs: int = 1,
             batch_size: int = 16, lr: float = 2e-5, scale: float = 20.0, max_seq_length: int = 256,
             seed: int = 13, progress: StepProgress | None = None) -> list[float]:
    """Train `base` (a sentence-transformers folder or id) on pairs, save it to `out`; return the losses."""
    import torch
    import torch.nn.functional as F
    from sentence_transformers import SentenceTransformer

    if len(pairs) < 2 or batch_size < 2:
        raise MedSearchError("Fine-tuning needs at least 2 pairs and a batch size of at least 2.")
    torch.manual_seed(seed)
    model = SentenceTransformer(str(base), device="cpu")
    model.max_seq_length = max_seq_length
    query_prefix, passage_prefix = family_prefixes(str(base))
    optimizer = torch.optim.AdamW(model.parameters(), lr=lr)
    per_epoch = -(-len(pairs) // batch_size)
    steps, losses, rng = per_epoch * epochs, [], random.Random(seed)
    model.train()
    for _ in range(epochs):
        order = list(range(len(pairs)))
        rng.shuffle(order)
        for start in range(0, len(order), batch_size):
            batch = [pairs[i] for i in order[start : start + batch_size]]
            queries = model(model.tokenize([query_prefix + q for q, _ in batch]))["sentence_embedding"]
            passages = model(model.tokenize([passage_prefix + p for _, p in batch]))["sentence_embedding"]
            logits = F.normalize(queries, dim=-1) @ F.normalize(passages, dim=-1).T * scale
            loss = F.cross_entropy(logits, torch.arange(len(batch)))
            loss.backward()
            optimizer.step()
            optimizer.zero_grad()
            losses.append(loss.item())
            if progress:
                progress(len(losses), steps, losses[-1])
    model.eval()
    model.save(str(out))
    card = Path(str(base)) / "medsearch.json"
    if card.is_file():
        shutil.copy(card, out / "medsearch.json")
    return losses
