"""LFM2's gated short convolution, written from scratch.

The operator that replaces most attention layers in LFM2. For an input ``h`` of shape
``[batch, T, d]``::

    B, C, x = split(in_proj(h), 3)      # one d -> 3d projection, three d-wide streams
    y = B * x                           # input gate
    z = causal depthwise conv1d(y)      # each channel mixes its own last `kernel_size` values
    out = out_proj(C * z)               # output gate, then d -> d

Two things make it cheap on a device. The convolution looks back only ``kernel_size - 1``
tokens (3 taps in LFM2: ``conv_L_cache = 3``), so decoding one token needs only the last 3
values of ``y`` per channel: a constant ``[batch, d, 3]`` state, whatever the context length,
where an attention layer's KV cache grows by one row per token. And it is all dense matmuls and
a tiny per-channel dot product, which every backend runs well.

Simplified against ``transformers``' ``Lfm2ShortConv``: no padding mask, no fused kernels and no
cache object; the state is a plain tensor passed in and out of :meth:`GatedShortConv.step`.
The parameter names and shapes are the same, so ``load_state_dict`` takes its weights directly
(see :func:`compare_with_transformers`).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class GatedShortConv(nn.Module):
    """Gated short convolution: ``out_proj(C * causal_conv(B * x))``, full sequence or one token at a time."""

    def __init__(self, hidden_size: int, kernel_size: int = 3, bias: bool = False) -> None:
        super().__init__()
        self.hidden_size = hidden_size
        self.kernel_size = kernel_size
        self.in_proj = nn.Linear(hidden_size, 3 * hidden_size, bias=bias)
        # Depthwise (groups = channels): channel i only ever sees channel i. No built-in padding:
        # causality is the explicit left padding in forward().
        self.conv = nn.Conv1d(hidden_size, hidden_size, kernel_size, groups=hidden_size, bias=bias)
        self.out_proj = nn.Linear(hidden_size, hidden_size, bias=bias)

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        """The whole sequence at once (training and prefill): ``[batch, T, d] -> [batch, T, d]``."""
        b, c, x = self.in_proj(h).chunk(3, dim=-1)
        y = (b * x).transpose(1, 2)  # conv1d wants channels first: [batch, d, T]
        # Pad kernel_size - 1 zeros on the left only, so output t sees inputs t-2, t-1, t and never the future.
        z = self.conv(F.pad(y, (self.kernel_size - 1, 0))).transpose(1, 2)
        return self.out_proj(c * z)

    def init_state(self, batch_size: int = 1, *, dtype: torch.dtype | None = None,
                   device: torch.device | str | None = None) -> torch.Tensor:
        """An empty decode state: the last ``kernel_size`` values of ``B * x`` per channel, all zero.

        Zeros are exactly what the left padding of :meth:`forward` feeds the first tokens.
        """
        weight = self.in_proj.weight
        return torch.zeros(batch_size, self.hidden_size, self.kernel_size,
                           dtype=dtype or weight.dtype, device=device or weight.device)

    def step(self, h_t: torch.Tensor, state: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Decode one token: ``h_t`` is ``[batch, 1, d]``, ``state`` is ``[batch, d, kernel_size]``.

        Returns the output ``[batch, 1, d]`` and the new state, the same shape as the old one:
        the oldest value drops out, the new ``B * x`` comes in, and the convolution is a dot
        product of that window with each channel's ``kernel_size`` taps.
        """
        b, c, x = self.in_proj(h_t).chunk(3, dim=-1)
        state = torch.cat([state[:, :, 1:], (b * x).transpose(1, 2)], dim=-1)
        z = (state * self.conv.weight.squeeze(1)).sum(dim=-1)  # [batch, d]
        if self.conv.bias is not None:
            z = z + self.conv.bias
        return self.out_proj(c * z.unsqueeze(1)), state


def compare_with_transformers(hidden_size: int = 64, seq_len: int = 12, *, kernel_size: int = 3,
                              batch_size: int = 2, bias: bool = False, seed: int = 0) -> dict[str, float | list[int]]:
    """Check :class:`GatedShortConv` against ``transformers``' ``Lfm2ShortConv`` (float32, random weights).

    Copies the weights of a freshly initialised ``Lfm2ShortConv`` into ours and returns

    - ``max_abs_diff_full``: full-sequence outputs, ours against transformers';
    - ``max_abs_diff_decode``: ours decoded token by token against ours on the full sequence;
    - ``state_shape``: the decode state's shape, which does not depend on ``seq_len``.
    """
    from transformers import Lfm2Config
    from transformers.models.lfm2.modeling_lfm2 import Lfm2ShortConv

    torch.manual_seed(seed)
    config = Lfm2Config(hidden_size=hidden_size, conv_L_cache=kernel_size, num_hidden_layers=1,
                        layer_types=["conv"], conv_bias=bias)
    reference = Lfm2ShortConv(config, layer_idx=0).float().eval()
    ours = GatedShortConv(hidden_size, kernel_size, bias=bias).float().eval()
    ours.load_state_dict(reference.state_dict())
    h = torch.randn(batch_size, seq_len, hidden_size)
    with torch.no_grad():
        expected = reference(h)
        full = ours(h)
        state = ours.init_state(batch_size)
        steps = []
        for t in range(seq_len):
            out, state = ours.step(h[:, t:t + 1], state)
            steps.append(out)
        decoded = torch.cat(steps, dim=1)
    return {
        "max_abs_diff_full": (full - expected).abs().max().item(),
        "max_abs_diff_decode": (decoded - full).abs().max().item(),
        "state_shape": list(state.shape),
    }
