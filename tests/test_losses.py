"""The three training losses are sentence-transformers' own, configured as the seed defines them (cosine
similarity, margin, scale): checked on tiny hand-made embeddings with the values worked out by hand."""

import math

import pytest
import torch

from medsearch.training import LOSSES, TrainConfig, make_loss


def tensor(rows):
    return torch.tensor(rows, dtype=torch.float32)


def loss_of(name, columns, labels=None, **params):
    return make_loss(None, TrainConfig(loss=name, **params)).compute_loss_from_embeddings(columns, labels).item()


def test_infonce_exact_value_with_in_batch_and_hard_negatives():
    # cosine matrix [[1, 0], [0, 1]]: each row's loss is -log(e / (e + 1))
    assert loss_of("infonce", [tensor([[1, 0], [0, 1]]), tensor([[2, 0], [0, 3]])], scale=1.0) == pytest.approx(
        math.log(1 + math.exp(-1)), abs=1e-6)
    # row logits [1, 0 | 0, 1] and [0, 1 | 1, 0]: -log(e / (2e + 2)) each
    columns = [tensor([[1, 0], [0, 1]]), tensor([[1, 0], [0, 1]]), tensor([[0, 1], [1, 0]])]
    assert loss_of("infonce", columns, scale=1.0) == pytest.approx(math.log(2 + 2 * math.exp(-1)), abs=1e-6)


def test_margin_exact_value_on_cosine():
    # row 0: cos(q,p)=1, cos(q,n)=0 -> relu(0.2 - 1) = 0; row 1: cos 0 vs 1 -> relu(0.2 + 1) = 1.2
    columns = [tensor([[1, 0], [1, 0]]), tensor([[1, 0], [0, 1]]), tensor([[0, 1], [1, 0]])]
    assert loss_of("margin", columns) == pytest.approx(0.6, abs=1e-6)
    assert loss_of("margin", columns, margin=0.5) == pytest.approx(0.75, abs=1e-6)


def test_contrastive_exact_value_on_cosine_distance():
    # pairs (q, p)=1 at distances 0 and 1 -> 0 and 0.5; (q, n)=0 at distances 1 and 1 - 1/√2 -> 0 and 0.5·(0.5 - d)²
    d = 1 - 1 / math.sqrt(2)
    anchors, others = tensor([[1, 0]] * 4), tensor([[1, 0], [0, 1], [0, 1], [1, 1]])
    expected = (0 + 0.5 + 0 + 0.5 * (0.5 - d) ** 2) / 4
    assert loss_of("contrastive", [anchors, others], tensor([1, 1, 0, 0])) == pytest.approx(expected, abs=1e-6)


@pytest.mark.parametrize("name", LOSSES)
def test_every_loss_is_lower_when_positives_are_closer(name):
    q, near, far = tensor([[1, 0, 0]]), tensor([[0.9, 0.1, 0]]), tensor([[0, 1, 0]])
    if name == "contrastive":
        good = loss_of(name, [torch.cat([q, q]), torch.cat([near, far])], tensor([1, 0]))
        bad = loss_of(name, [torch.cat([q, q]), torch.cat([far, near])], tensor([1, 0]))
    else:
        good, bad = loss_of(name, [q, near, far]), loss_of(name, [q, far, near])
    assert good < bad
