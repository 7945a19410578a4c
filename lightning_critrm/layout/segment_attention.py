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

from lightning_critrm.layout.batch import Segment

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

        return sdpa_attention_forward(module, query, key, value, attention_mask, dropout=dropout,
                                      scaling=scaling,
                                      **kwargs)
    groups = query.shape[1] // key.shape[1]
    if groups > 1:
        key = key.repeat_interleave(groups, dim=1)
        value = value.repeat_interleave(groups, dim=1)
    dropout = dropout if module.training else 0.0
    width = query.shape[2]
    rows = []
    # Rows and columns are cut with unbind/split, not indexing: their backward writes each gradient
    # once, where every indexed slice would allocate (and zero) a gradient of the whole tensor.
    rows_qkv = zip(query.unbind(0), key.unbind(0), value.unbind(0))
    for segments, (q_row, k_row, v_row) in zip(attention_segments, rows_qkv):
        cuts = sorted({0, width} | {c for ranges, _ in segments for span in ranges for c in span})
        spans = list(zip(cuts, cuts[1:]))
        sizes = [end - start for start, end in spans]
        q_cols, k_cols, v_cols = ({span: piece for span, piece in zip(spans, t.split(sizes, dim=1))}
                                  for t in (q_row, k_row, v_row))
        pieces: list[tuple[int, torch.Tensor]] = []  # (first column, output [H, n, D]) in any order
        for ranges, keep_from in segments:
            # [1, H, n, D]: given 3-D inputs, CPU sdpa falls back to its slow math kernel.
            q, k, v = (_columns(cols, ranges).unsqueeze(0) for cols in (q_cols, k_cols, v_cols))
            out = F.scaled_dot_product_attention(q, k, v, dropout_p=dropout, scale=scaling,
                                                 is_causal=q.shape[2] > 1)[0]
            # The kept rows back to their columns: the segment owns its outputs from keep_from on.
            parts, dropped, offset = [], 0, 0
            for start, end in ranges:
                skip = min(max(keep_from - offset, 0), end - start)
                dropped += skip
                if start + skip < end:
                    parts.append((start + skip, end - start - skip))
                offset += end - start
            pieces.extend(zip((start for start, _ in parts),
                              out.split([dropped] + [n for _, n in parts], dim=1)[1:]))
        rows.append(_assemble(pieces, width, q_row))
    return torch.stack(rows).transpose(1, 2).contiguous(), None


def _columns(columns: dict[tuple[int, int], torch.Tensor],
             ranges: tuple[tuple[int, int], ...]) -> torch.Tensor:
    """[H, n, D]: the columns of ``ranges``, in order, from a row cut at every range boundary."""
    parts = [piece for lo, hi in ranges for (start, end),
             piece in columns.items() if lo <= start and end <= hi]
    return parts[0] if len(parts) == 1 else torch.cat(parts, dim=1)


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


def mask_stand_in(input_ids: torch.Tensor) -> torch.Tensor:
    """A [B, 1, 1, 1] attention mask for a forward pass given ``attention_segments``, which never
    reads one. transformers hands a 4-D mask to the layers as is; given none, it reads the restarting
    position ids of packed rows and builds a [B, 1, T, T] block mask (196 MB at 14,000 tokens,
    rebuilt every step) for nothing."""
    return torch.ones((input_ids.shape[0], 1, 1, 1), dtype=torch.bool, device=input_ids.device)


def register() -> str:
    """Make ``sdpa_segments`` known to transformers (attention and mask creation); returns its name."""
    from transformers import AttentionInterface
    from transformers.masking_utils import AttentionMaskInterface, sdpa_mask

    AttentionInterface.register(IMPLEMENTATION, segment_attention)
    AttentionMaskInterface.register(IMPLEMENTATION, sdpa_mask)
    return IMPLEMENTATION
