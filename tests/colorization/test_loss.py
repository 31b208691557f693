"""Loss: iColoriT's Huber on ab, and the sparsity term of wrapped models."""

from __future__ import annotations

import pytest
import torch

import adaprune
from adacolor.loss import colorization_loss, huber_loss
from adacolor.model import create_colorizer

SMALL = dict(image_size=32, patch_size=8, depth=1)


def test_huber_is_quadratic_below_delta_and_linear_above() -> None:
    target = torch.zeros(1, 2, 1, 2)
    pred = torch.tensor([0.005, 0.5, -0.002, -0.3]).view(1, 2, 1, 2)  # channel a: [0.005, 0.5]
    delta = 0.01
    per = {0.005: 0.5 * 0.005 ** 2 / delta, 0.5: 0.5 - 0.5 * delta,
           0.002: 0.5 * 0.002 ** 2 / delta, 0.3: 0.3 - 0.5 * delta}
    # summed over the two channels, averaged over the two pixels
    expected = ((per[0.005] + per[0.002]) + (per[0.5] + per[0.3])) / 2
    assert float(huber_loss(pred, target, delta)) == pytest.approx(expected, rel=1e-6)
    assert float(huber_loss(target, target)) == 0.0


def test_huber_rejects_bad_arguments() -> None:
    with pytest.raises(ValueError, match="one shape"):
        huber_loss(torch.zeros(1, 2, 4, 4), torch.zeros(1, 2, 4, 5))
    with pytest.raises(ValueError, match="delta"):
        huber_loss(torch.zeros(1, 2, 4, 4), torch.zeros(1, 2, 4, 4), delta=0.0)


def test_dense_model_has_only_the_huber_term() -> None:
    model = create_colorizer("icolorit-t", **SMALL)
    pred = model(torch.randn(2, 4, 32, 32))
    terms = colorization_loss(model, pred, torch.zeros_like(pred))
    assert set(terms) == {"huber", "loss"}
    assert terms["loss"] is terms["huber"]


def test_adaptive_model_adds_the_sparsity_term_with_its_betas() -> None:
    model = create_colorizer("adacolvit-t", **SMALL).train()
    pred = model(torch.randn(2, 4, 32, 32))
    target = torch.zeros_like(pred)
    terms = colorization_loss(model, pred, target, sparsity_weight=2.0)
    assert set(terms) == {"huber", "sparsity", "loss"}
    expected = adaprune.sparsity_loss(model.backbone, 0.5, 0.8)
    torch.testing.assert_close(terms["sparsity"], expected)
    torch.testing.assert_close(terms["loss"], terms["huber"] + 2.0 * terms["sparsity"])
    # betas given explicitly win over the model's
    other = colorization_loss(model, pred, target, beta_patch=1.0, beta_layer=1.0)
    torch.testing.assert_close(other["sparsity"], adaprune.sparsity_loss(model.backbone, 1.0, 1.0))
    # the sparsity term reaches the decision layers
    terms["sparsity"].backward()
    gate = model.backbone.blocks[0].adaprune_gate
    grads = [p.grad for p in gate.parameters() if p.grad is not None]
    assert grads and any(g.abs().sum() > 0 for g in grads)
