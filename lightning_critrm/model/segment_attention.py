"""Attention over packed and shared-prompt rows, one causal sequence at a time.

Packed and shared-prompt rows need attention confined to each sequence. A 4-D mask does that, but
on hardware without variable-length kernels (CPUs) attention then runs over whole rows and loses
the causal fast path, which skips everything above the diagonal. Here each sequence of a row gets
its own causal ``scaled_dot_product_attention`` call instead: a packed row costs the attention of
its sequences alone, and no padding is attended at all.

A shared-prompt sequence is its prefix columns followed by its own rest; its attention is computed
over those columns together, so the prefix's attention is recomputed per sequence (cheap next to
the prefix's projections and MLPs, which run once). The prefix's outputs are taken from the
group's first sequence.

The function is registered with transformers as the attention implementation ``sdpa_segments``:
it is ``sdpa`` itself (mask creation included) unless the forward pass is given
``attention_segments``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Optional

import torch
import torch.nn.functional as F

from lightning_critrm.batch import Segment

IMPLEMENTATION = "sdpa_segments"


def segment_attention(
    module: torch.nn.Module,
    query: torch.Tensor,
    key: torch.Tensor,
    value: torch.Tensor,
    attention_mask: Optional[torch.Tensor],
    dropout: float = 0.0,
    scaling: Optional[float] = None,
    attention_segments: Optional[Sequence[Sequence[Segment]]] = None,
    **kwargs,
) -> tuple[torch.Tensor, None]:
    """transformers' attention contract: query [B, H, T, D], key/value [B, H_kv, T, D] ->
    ([B, T, H, D], None). ``attention_segments[b]`` lists row ``b``'s sequences; columns no segment
    writes (padding) come out as zeros."""
    if attention_segments is None:
        from transformers.integrations.sdpa_attention import sdpa_attention_forward

        return sdpa_attention_forward(module, query, key, value, attention_mask, dropout=dropout, scaling=scaling,
                                      **kwargs)
    groups = query.shape[1] // key.shape[1]
    if groups > 1:
        key = key.repeat_interleave(groups, dim=1)
        value = value.repeat_interleave(groups, dim=1)
    dropout = dropout if module.training else 0.0
    rows = []
    for b, segments in enumerate(attention_segments):
        pieces: list[tuple[int, torch.Tensor]] = []  # (first column, output [H, n, D]) in any order
        for segment in segments:
            ranges, keep_from = segment
            # [1, H, n, D]: given 3-D inputs, CPU sdpa falls back to its slow math kernel.
            q, k, v = (_columns(t[b : b + 1], ranges) for t in (query, key, value))
            out = F.scaled_dot_product_attention(q, k, v, dropout_p=dropout, scale=scaling, is_causal=q.shape[2] > 1)[0]
            offset = 0
            for start, end in ranges:  # scatter the kept rows back to their columns
                n = end - start
                keep = max(keep_from - offset, 0)
                if keep < n:
                    pieces.append((start + keep, out[:, offset + keep : offset + n]))
                offset += n
        rows.append(_assemble(pieces, query.shape[2], query[b]))
    return torch.stack(rows).transpose(1, 2).contiguous(), None


def _columns(t: torch.Tensor, ranges: tuple[tuple[int, int], ...]) -> torch.Tensor:
    """[1, H, T, D] -> [1, H, n, D]: the columns of ``ranges``, in order."""
    parts = [t[:, :, start:end] for start, end in ranges]
    return parts[0] if len(parts) == 1 else torch.cat(parts, dim=2)


def _assemble(pieces: list[tuple[int, torch.Tensor]], width: int, like: torch.Tensor) -> torch.Tensor:
    """[H, width, D] from disjoint column pieces, zeros in the gaps."""
    heads, _, dim = like.shape
    out, column = [], 0
    for start, piece in sorted(pieces, key=lambda p: p[0]):
        if start > column:
            out.append(like.new_zeros(heads, start - column, dim))
        out.append(piece.to(like.dtype))
        column = start + piece.shape[1]
    if column < width:
        out.append(like.new_zeros(heads, width - column, dim))
    return torch.cat(out, dim=1)


def register() -> str:
    """Make ``sdpa_segments`` known to transformers (attention and mask creation); returns its name."""
    from transformers import AttentionInterface
    from transformers.masking_utils import AttentionMaskInterface, sdpa_mask

    AttentionInterface.register(IMPLEMENTATION, segment_attention)
    AttentionMaskInterface.register(IMPLEMENTATION, sdpa_mask)
    return IMPLEMENTATION
