"""The from-scratch gated short convolution equals transformers' LFM2 layer, in both of its modes."""

import pytest
import torch
from transformers import DynamicCache, Lfm2Config
from transformers.models.lfm2.modeling_lfm2 import Lfm2ShortConv

from lfm_helpers.shortconv import GatedShortConv, compare_with_transformers


@pytest.mark.parametrize("kernel_size, bias", [(3, False), (4, True)])
def test_matches_transformers_full_sequence_and_decode(kernel_size, bias):
    result = compare_with_transformers(hidden_size=48, seq_len=17, kernel_size=kernel_size, bias=bias)
    assert result["max_abs_diff_full"] < 1e-5
    assert result["max_abs_diff_decode"] < 1e-5
    assert result["state_shape"] == [2, 48, kernel_size]


def _pair(hidden=32, seed=1):
    torch.manual_seed(seed)
    config = Lfm2Config(hidden_size=hidden, num_hidden_layers=1, layer_types=["conv"], conv_L_cache=3)
    reference = Lfm2ShortConv(config, layer_idx=0).eval()
    ours = GatedShortConv(hidden).eval()
    ours.load_state_dict(reference.state_dict())  # same parameter names and shapes
    return config, reference, ours


def test_decode_state_is_what_transformers_caches():
    """After a prefill, transformers' conv state is our state; the next decoded token agrees too."""
    config, reference, ours = _pair()
    h = torch.randn(1, 9, 32)
    cache = DynamicCache(config=config)
    with torch.no_grad():
        reference(h[:, :8], cache=cache)
        state = ours.init_state(1)
        for t in range(8):
            _, state = ours.step(h[:, t:t + 1], state)
        torch.testing.assert_close(cache.layers[0].conv_states[0], state)
        expected = reference(h[:, 8:9], cache=cache)
        out, state = ours.step(h[:, 8:9], state)
    torch.testing.assert_close(out, expected, atol=1e-5, rtol=0)
    torch.testing.assert_close(cache.layers[0].conv_states[0], state)


def test_state_size_does_not_grow_with_context():
    _, _, ours = _pair()
    state = ours.init_state(3)
    with torch.no_grad():
        for _ in range(50):
            _, state = ours.step(torch.randn(3, 1, 32), state)
    assert state.shape == (3, 32, 3)


def test_forward_is_causal():
    """Changing a later token never changes an earlier output."""
    _, _, ours = _pair()
    h = torch.randn(1, 10, 32)
    changed = h.clone()
    changed[:, 6:] += 1.0
    with torch.no_grad():
        torch.testing.assert_close(ours(h)[:, :6], ours(changed)[:, :6])
