"""Training losses for dense retrievers, on batches of query / positive / negative embeddings.

Each loss is a `torch.nn.Module` whose `forward(queries, positives, negatives=None)` takes
(batch × dim) embedding tensors, row i of each belonging together, and returns a scalar; all
compare embeddings by cosine similarity, as sentence-transformers' losses of the same names.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from medsearch.records import MedSearchError


def _cosine(a: Tensor, b: Tensor) -> Tensor:
    """Row-wise cosine similarity of two (batch × dim) tensors."""
    return F.cosine_similarity(a, b, dim=-1)


class InfoNCELoss(nn.Module):
    """Multiple-negatives ranking: each query must pick its own positive among all the batch's positives
    (in-batch negatives) and all hard negatives; cross-entropy over scaled cosine similarities."""

    def __init__(self, scale: float = 20.0) -> None:
        super().__init__()
        self.scale = scale

    def forward(self, queries: Tensor, positives: Tensor, negatives: Tensor | None = None) -> Tensor:
        candidates = positives if negatives is None else torch.cat([positives, negatives])
        logits = F.normalize(queries, dim=-1) @ F.normalize(candidates, dim=-1).T * self.scale
        return F.cross_entropy(logits, torch.arange(len(queries), device=queries.device))


class MarginLoss(nn.Module):
    """Triplet margin ranking: the positive must beat its negative by `margin` in cosine similarity."""

    def __init__(self, margin: float = 0.2) -> None:
        super().__init__()
        self.margin = margin

    def forward(self, queries: Tensor, positives: Tensor, negatives: Tensor | None = None) -> Tensor:
        if negatives is None:
            raise MedSearchError("The margin loss needs a negative passage for every query.")
        return F.relu(self.margin - (_cosine(queries, positives) - _cosine(queries, negatives))).mean()


class ContrastiveLoss(nn.Module):
    """Pairs: pull (query, positive) together, push (query, negative) apart beyond `margin`, in cosine
    distance d = 1 - cos: the mean of 0.5·d² over positive pairs and 0.5·relu(margin - d)² over negative ones."""

    def __init__(self, margin: float = 0.5) -> None:
        super().__init__()
        self.margin = margin

    def forward(self, queries: Tensor, positives: Tensor, negatives: Tensor | None = None) -> Tensor:
        terms = [0.5 * (1 - _cosine(queries, positives)) ** 2]
        if negatives is not None:
            terms.append(0.5 * F.relu(self.margin - (1 - _cosine(queries, negatives))) ** 2)
        return torch.cat(terms).mean()


LOSSES: dict[str, type[nn.Module]] = {"infonce": InfoNCELoss, "margin": MarginLoss, "contrastive": ContrastiveLoss}


def make_loss(name: str, **params: float) -> nn.Module:
    """The loss called `name` (infonce, margin, contrastive) with its parameters (scale, margin)."""
    if name not in LOSSES:
        raise MedSearchError(f"Unknown loss '{name}': choose one of {', '.join(LOSSES)}.")
    try:
        return LOSSES[name](**params)
    except TypeError as exc:
        raise MedSearchError(f"Bad parameters for loss '{name}' ({', '.join(params)}): {exc}") from exc
