"""The training losses on tiny hand-made embeddings, with the expected values worked out by hand."""

import math

import numpy as np
import pytest
import torch

from medsearch.losses import LOSSES, ContrastiveLoss, InfoNCELoss, MarginLoss, make_loss
from medsearch.records import MedSearchError


def tensor(rows):
    return torch.tensor(rows, dtype=torch.float32)


def test_infonce_exact_value_with_in_batch_negatives():
    # cosine matrix [[1, 0], [0, 1]]: each row's loss is -log(e / (e + 1))
    loss = InfoNCELoss(scale=1.0)(tensor([[1, 0], [0, 1]]), tensor([[2, 0], [0, 3]]))
    assert loss.item() == pytest.approx(math.log(1 + math.exp(-1)), abs=1e-6)


def test_infonce_exact_value_with_hard_negatives():
    # row logits [1, 0 | 0, 1] and [0, 1 | 1, 0]: -log(e / (2e + 2)) each
    loss = InfoNCELoss(scale=1.0)(tensor([[1, 0], [0, 1]]), tensor([[1, 0], [0, 1]]), tensor([[0, 1], [1, 0]]))
    assert loss.item() == pytest.approx(math.log(2 + 2 * math.exp(-1)), abs=1e-6)


def test_infonce_matches_a_numpy_cross_entropy():
    rng = np.random.default_rng(0)
    q, p, n = (rng.normal(size=(4, 8)) for _ in range(3))
    unit = lambda m: m / np.linalg.norm(m, axis=1, keepdims=True)  # noqa: E731
    logits = unit(q) @ unit(np.vstack([p, n])).T * 20.0
    expected = np.mean(np.log(np.exp(logits).sum(axis=1)) - logits[np.arange(4), np.arange(4)])
    loss = InfoNCELoss()(tensor(q), tensor(p), tensor(n))
    assert loss.item() == pytest.approx(expected, rel=1e-4)


def test_infonce_uses_the_other_rows_positives_as_negatives():
    queries, loss = tensor([[1, 0, 0], [0, 1, 0]]), InfoNCELoss(scale=1.0)
    before = loss(queries, tensor([[1, 0, 0], [0, 1, 1]])).item()
    # row 1's positive turns towards query 0 but keeps its cosine (1/√2) to query 1, so row 1's own term
    # stays; only query 0's in-batch negative changes, from cosine 0 to 1/√2
    after = loss(queries, tensor([[1, 0, 0], [1, 1, 0]])).item()
    row0 = lambda negative: math.log(1 + math.exp(negative - 1))  # noqa: E731
    assert after - before == pytest.approx((row0(1 / math.sqrt(2)) - row0(0)) / 2, abs=1e-6)
    assert after > before


def test_margin_exact_value():
    # row 0: cos(q,p)=1, cos(q,n)=0 -> relu(0.2 - 1) = 0; row 1: cos 0 vs 1 -> relu(0.2 + 1) = 1.2
    loss = MarginLoss(margin=0.2)(tensor([[1, 0], [1, 0]]), tensor([[1, 0], [0, 1]]), tensor([[0, 1], [1, 0]]))
    assert loss.item() == pytest.approx(0.6, abs=1e-6)


def test_margin_needs_negatives():
    with pytest.raises(MedSearchError, match="negative"):
        MarginLoss()(tensor([[1, 0]]), tensor([[1, 0]]))


def test_contrastive_exact_value():
    # positive distances 0 and 1 -> 0 and 0.5; negative distances 1 and 1 - 1/√2 -> 0 and 0.5·(0.5 - 0.2929)²
    d = 1 - 1 / math.sqrt(2)
    expected = (0 + 0.5 + 0 + 0.5 * (0.5 - d) ** 2) / 4
    loss = ContrastiveLoss(margin=0.5)(tensor([[1, 0], [1, 0]]), tensor([[1, 0], [0, 1]]), tensor([[0, 1], [1, 1]]))
    assert loss.item() == pytest.approx(expected, abs=1e-6)


def test_contrastive_without_negatives_only_pulls_pairs_together():
    loss = ContrastiveLoss()(tensor([[1, 0]]), tensor([[0, 1]]))
    assert loss.item() == pytest.approx(0.5, abs=1e-6)


@pytest.mark.parametrize("name", list(LOSSES))
def test_every_loss_is_lower_when_positives_are_closer(name):
    torch.manual_seed(0)
    queries, negatives = torch.randn(8, 16), torch.randn(8, 16)
    close = queries + 0.1 * torch.randn(8, 16)
    far = torch.randn(8, 16)
    loss = make_loss(name)
    assert loss(queries, close, negatives).item() < loss(queries, far, negatives).item()


def test_make_loss_passes_parameters():
    assert make_loss("margin", margin=0.5).margin == 0.5
    assert make_loss("infonce", scale=10.0).scale == 10.0


def test_unknown_loss_or_parameter_is_a_one_line_error():
    with pytest.raises(MedSearchError, match="Unknown loss 'triplet'.*infonce, margin, contrastive") as info:
        make_loss("triplet")
    assert "\n" not in str(info.value)
    with pytest.raises(MedSearchError, match="scale"):
        make_loss("margin", scale=3.0)
