"""ops: the masked softmax that training paths use to exclude dropped keys."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from adaprune.ops import masked_softmax_attention


def _qkv(batch: int = 2, heads: int = 2, n: int = 6, d: int = 4, scale: float = 1.0):
    return [(torch.randn(batch, heads, n, d) * scale).requires_grad_() for _ in range(3)]


def test_hard_mask_equals_attention_over_the_kept_keys():
    q, k, v = _qkv()
    keep = torch.tensor([[1, 0, 1, 1, 0, 1], [0, 1, 1, 0, 0, 0]], dtype=torch.float32)
    out = masked_softmax_attention(q, k, v, keep)
    for b in range(2):
        kept = keep[b].bool()
        expected = F.scaled_dot_product_attention(q[b:b + 1], k[b:b + 1, :, kept], v[b:b + 1, :, kept])
        torch.testing.assert_close(out[b:b + 1], expected, atol=1e-6, rtol=1e-5)


def test_gradients_stay_finite_when_a_query_has_no_key_left():
    """A sample that drops every patch leaves the read-only policy token no key: zeros out,
    and no 0/0 in the backward (this once turned a training run's weights into NaN)."""
    q, k, v = _qkv()
    keep = torch.tensor([[0, 0, 0, 0, 0, 0], [1, 1, 0, 1, 1, 1]], dtype=torch.float32, requires_grad=True)
    out = masked_softmax_attention(q, k, v, keep)
    assert out[0].abs().max() == 0
    (out * torch.randn_like(out)).sum().backward()
    for t in (q, k, v, keep):  # bounded, not merely finite: Adam squares them
        assert torch.isfinite(t.grad).all() and t.grad.abs().max() < 1e4
    assert keep.grad[0].abs().sum() > 0  # the decision still learns that keeping a key helps


def test_gradients_stay_finite_when_the_top_key_is_dropped_far_above_the_rest():
    q, k, v = _qkv(scale=30.0)  # scores of order 1e3: exp overflows unless shifted by a kept key
    keep = torch.ones(2, 6)
    top = (q[:, 0, 0] @ k[:, 0].transpose(-1, -2)).argmax(dim=-1)
    keep[torch.arange(2), top] = 0
    keep.requires_grad_()
    out = masked_softmax_attention(q, k, v, keep)
    (out * torch.randn_like(out)).sum().backward()
    assert torch.isfinite(out).all()
    for t in (q, k, v, keep):  # a shift by the dropped top score would leave a ~0 denominator
        assert torch.isfinite(t.grad).all() and t.grad.abs().max() < 1e4


def test_gathered_block_computes_the_kept_tokens_among_themselves():
    from adaprune.gates.token_removal import block_forward, gathered_block
    from adaprune.ops import kept_index
    from tests.conftest import tiny_vit

    block = tiny_vit().blocks[0]
    x = torch.randn(2, 17, 32)
    keep = torch.zeros(2, 17, dtype=torch.bool)
    keep[0, ::2], keep[1, 1:6] = True, True  # 9 and 5 tokens: the second sample is padded
    index, valid = kept_index(keep)
    assert valid is not None
    with torch.no_grad():
        out = gathered_block(block, x, index, valid)
        for b in range(2):
            expected = x[b].clone()
            expected[keep[b]] = block_forward(block, x[b:b + 1, keep[b]])[0]
            torch.testing.assert_close(out[b], expected, atol=1e-5, rtol=1e-5)
