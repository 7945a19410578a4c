import pytest
import torch
from torch import nn
from torch.nn.attention import SDPBackend
from torch.testing import assert_close

from lightning_critrm.layout.batch import RewardBatch
from lightning_critrm.layout.segment_attention import segment_attention

SEQUENCES = [[5, 6, 7, 8, 2], [5, 6, 9, 2], [3, 2], [4, 4, 4, 2], [1, 2, 3, 4, 5, 6, 2], [1, 2, 3, 2]]


@pytest.mark.parametrize("layout", [
    lambda: RewardBatch.packed(SEQUENCES, pad_token_id=0, row_tokens=12),
    lambda: RewardBatch.shared_prompt(SEQUENCES, [[0, 1], [2, 3], [4, 5]], pad_token_id=0),
    lambda: RewardBatch.shared_prompt(SEQUENCES, [[0, 1], [2, 3], [4, 5]], pad_token_id=0, pack=True,
                                      row_tokens=12),
    # six rests, no prefix
    lambda: RewardBatch.shared_prompt(SEQUENCES, [[0, 1, 2, 3, 4, 5]], pad_token_id=0),
])
def test_segment_attention_equals_masked_attention_on_every_real_position_with_grouped_heads(layout):
    batch = layout()
    rows, width = batch.input_ids.shape
    torch.manual_seed(0)
    query = torch.randn(rows, 4, width, 8, requires_grad=True)
    # 2 query heads per key head
    key, value = (torch.randn(rows, 2, width, 8, requires_grad=True) for _ in range(2))
    module = nn.Module().eval()
    out, _ = segment_attention(module, query, key, value, None, scaling=0.5,
                               attention_segments=batch.attention_segments())  # [B, T, H, D]
    if batch.block_ids is not None:
        allowed = batch.attention_blocks()
    else:  # packed: within each sequence, causally
        ids = torch.zeros(rows, width, dtype=torch.long) - 1
        for k, (first,
                last) in enumerate(zip(batch.first_token_index.tolist(), batch.last_token_index.tolist())):
            ids.view(-1)[first : last + 1] = k
        allowed = ((ids[:, :, None] == ids[:, None, :]) & torch.ones(width, width,
                                                                     dtype=torch.bool).tril())[:, None]
        allowed |= torch.eye(width, dtype=torch.bool)  # padding attends itself (its output is not compared)
    expected = torch.nn.functional.scaled_dot_product_attention(
        query, key.repeat_interleave(2, dim=1), value.repeat_interleave(2, dim=1), attn_mask=allowed,
                                                                scale=0.5
    ).transpose(1, 2)
    real = torch.zeros(rows * width, dtype=torch.bool)
    if batch.branch_ids is not None:
        real = (batch.branch_ids >= 0).reshape(-1)
    else:
        for first, last in zip(batch.first_token_index.tolist(), batch.last_token_index.tolist()):
            real[first : last + 1] = True
    real = real.view(rows, width)
    assert_close(out[real], expected[real])
    assert torch.equal(out[~real], torch.zeros_like(out[~real]))  # padding: zeros, attended by nothing
    weights = torch.randn_like(out)
    grads = torch.autograd.grad((out[real] * weights[real]).sum(), (query, key, value))
    expected_grads = torch.autograd.grad((expected[real] * weights[real]).sum(), (query, key, value))
    for got, want in zip(grads, expected_grads):
        assert_close(got, want)


def test_each_sequence_goes_to_sdpa_as_a_4d_batch(monkeypatch):
    # Given 3-D inputs, CPU sdpa silently takes its slow math kernel instead of the fused one.
    calls = []
    real = torch.nn.functional.scaled_dot_product_attention

    def recording(q, k, v, **kwargs):
        calls.append((q.dim(), torch._fused_sdp_choice(q, k, v, is_causal=kwargs.get("is_causal", False))))
        return real(q, k, v, **kwargs)

    monkeypatch.setattr(torch.nn.functional, "scaled_dot_product_attention", recording)
    batch = RewardBatch.shared_prompt(SEQUENCES, [[0, 1], [2, 3], [4, 5]], pad_token_id=0)
    query = torch.randn(batch.input_ids.shape[0], 2, batch.input_ids.shape[1], 8)
    segment_attention(nn.Module().eval(), query, query, query, None,
                      attention_segments=batch.attention_segments())
    assert len(calls) == 6 and all(dim == 4 for dim, _ in calls)
    assert all(backend == int(SDPBackend.FLASH_ATTENTION) for _, backend in calls)
