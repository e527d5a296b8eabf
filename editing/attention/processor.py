"""Attention control through diffusers attention processors (`unet.set_attn_processor`).

The public Prompt-to-Prompt code replaced the `forward` of attention classes found by name, which
broke with every diffusers release. Here each layer's processor is wrapped in a
`ControlledAttnProcessor` for the duration of an `attention_control(unet, controller)` block:

- where the controller does not need the probabilities (`controller.wants(site)` is False), the
  call is delegated to the original processor object, so the output is bit-identical to the stock
  UNet (SDPA, xformers, ...);
- where it does, attention is computed explicitly as softmax(Q K^T * scale) V (Prompt-to-Prompt
  Sec. 3.1, eq. 1 "M = Softmax(Q K^T / sqrt(d))"), replicating diffusers' `AttnProcessor` step by step,
  and the probabilities M pass through the controller (Sec. 3.2: "Edit(M_t, M*_t, t)").

The latent size of the current UNet call is captured by a forward pre-hook on the UNet, so map
sizes are derived, never assumed (see `editing.attention.site`).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import torch
from diffusers.models.attention_processor import (
    Attention,
    AttnProcessor,
    AttnProcessor2_0,
    SlicedAttnProcessor,
    XFormersAttnProcessor,
)
from torch import Tensor, nn

from editing.attention.controller import AttentionController
from editing.attention.site import AttentionSite, map_level, place_of

STANDARD_PROCESSORS = (AttnProcessor, AttnProcessor2_0, SlicedAttnProcessor, XFormersAttnProcessor)
"""Processors that compute plain softmax attention, which the explicit path reproduces."""


class _LatentSize:
    """The (H, W) of the sample of the UNet call in progress, shared by all wrapped processors."""

    def __init__(self) -> None:
        self.value: tuple[int, int] | None = None

    @torch.compiler.disable
    def hook(self, module: nn.Module, args: tuple, kwargs: dict) -> None:
        sample = args[0] if args else kwargs["sample"]
        self.value = (int(sample.shape[-2]), int(sample.shape[-1]))


class ControlledAttnProcessor:
    """Wraps one layer's original processor and lets a controller read/rewrite its attention maps.

    Args:
        original: the processor the layer had (called unchanged where the controller is idle).
        controller: the Prompt-to-Prompt controller.
        name: the processor's name in `unet.attn_processors` (identifies the layer).
        latent: shared holder of the current latent size (set by `attention_control`'s UNet hook).
    """

    def __init__(
        self, original, controller: AttentionController, name: str, latent: _LatentSize
    ) -> None:
        self.original = original
        self.controller = controller
        self.name = name
        self.place = place_of(name)
        self.latent = latent

    def site(self, hidden_states: Tensor, encoder_hidden_states: Tensor | None) -> AttentionSite:
        """The metadata of this call: place, self/cross, map size derived from the query length."""
        latent = self.latent.value
        if hidden_states.ndim == 4:  # [B, C, h, w]: the size is explicit
            num_queries = hidden_states.shape[-2] * hidden_states.shape[-1]
        else:  # [B, h * w, C]
            num_queries = hidden_states.shape[1]
        found = map_level(num_queries, latent) if latent is not None else None
        level, size = found if found is not None else (None, None)
        return AttentionSite(
            name=self.name,
            place=self.place,
            is_cross=encoder_hidden_states is not None,
            size=size,
            level=level,
            latent_size=latent or (0, 0),
        )

    # Under `compile=true` (a compiled UNet) a controlled layer runs eagerly: the controller's
    # Python state (step counters, stored maps) changes every call, which a compiled graph
    # would either bake in or recompile for; the rest of the UNet stays compiled.
    @torch.compiler.disable
    def __call__(
        self,
        attn: Attention,
        hidden_states: Tensor,
        encoder_hidden_states: Tensor | None = None,
        attention_mask: Tensor | None = None,
        temb: Tensor | None = None,
        **kwargs,
    ) -> Tensor:
        site = self.site(hidden_states, encoder_hidden_states)
        if not self.controller.wants(site):
            if temb is not None:  # forwarded exactly as `Attention.forward` received it
                kwargs["temb"] = temb
            return self.original(
                attn,
                hidden_states,
                encoder_hidden_states=encoder_hidden_states,
                attention_mask=attention_mask,
                **kwargs,
            )
        if not isinstance(self.original, STANDARD_PROCESSORS):
            raise TypeError(
                f"layer {self.name} uses {type(self.original).__name__}, which does not compute plain "
                "softmax attention; Prompt-to-Prompt can only control layers with a standard processor "
                "(AttnProcessor, AttnProcessor2_0, SlicedAttnProcessor, XFormersAttnProcessor)"
            )
        return self.explicit(attn, hidden_states, encoder_hidden_states, attention_mask, temb, site)

    def explicit(
        self,
        attn: Attention,
        hidden_states: Tensor,
        encoder_hidden_states: Tensor | None,
        attention_mask: Tensor | None,
        temb: Tensor | None,
        site: AttentionSite,
    ) -> Tensor:
        """diffusers' `AttnProcessor`, operation for operation, with the controller on the maps.

        Shapes: hidden_states [B, N, C] or [B, C, h, w]; encoder_hidden_states [B, L, D] or None
        (self-attention); the maps M are [B * heads, N, L] internally, [B, heads, N, L] for the
        controller.
        """
        # 1. Input normalisation and layout, as in AttnProcessor.
        residual = hidden_states
        if attn.spatial_norm is not None:
            hidden_states = attn.spatial_norm(hidden_states, temb)
        input_ndim = hidden_states.ndim
        if input_ndim == 4:
            batch_size, channel, height, width = hidden_states.shape
            hidden_states = hidden_states.view(batch_size, channel, height * width).transpose(1, 2)
        batch_size, sequence_length, _ = (
            hidden_states.shape if encoder_hidden_states is None else encoder_hidden_states.shape
        )
        attention_mask = attn.prepare_attention_mask(attention_mask, sequence_length, batch_size)
        if attn.group_norm is not None:
            hidden_states = attn.group_norm(hidden_states.transpose(1, 2)).transpose(1, 2)

        # 2. Projections Q = W_Q phi(z_t), K = W_K psi(P), V = W_V psi(P) (P2P Sec. 3.1).
        query = attn.to_q(hidden_states)
        if encoder_hidden_states is None:
            encoder_hidden_states = hidden_states
        elif attn.norm_cross:
            encoder_hidden_states = attn.norm_encoder_hidden_states(encoder_hidden_states)
        key = attn.to_k(encoder_hidden_states)
        value = attn.to_v(encoder_hidden_states)
        query = attn.head_to_batch_dim(query)
        key = attn.head_to_batch_dim(key)
        value = attn.head_to_batch_dim(value)
        if attn.norm_q is not None:  # QK-norm (applied by AttnProcessor2_0, per head)
            query = attn.norm_q(query)
        if attn.norm_k is not None:
            key = attn.norm_k(key)

        # 3. M = Softmax(Q K^T * scale + mask) [B * heads, N, L]; the controller edits M (eq. 1).
        probs = attn.get_attention_scores(query, key, attention_mask)
        maps = probs.view(batch_size, attn.heads, *probs.shape[1:])
        maps = self.controller(maps, site)
        probs = maps.reshape(probs.shape).to(probs.dtype)

        # 4. Output M V, heads merged, projection, dropout, residual and rescale.
        hidden_states = torch.bmm(probs, value)
        hidden_states = attn.batch_to_head_dim(hidden_states)
        hidden_states = attn.to_out[0](hidden_states)
        hidden_states = attn.to_out[1](hidden_states)
        if input_ndim == 4:
            hidden_states = hidden_states.transpose(-1, -2).reshape(
                batch_size, channel, height, width
            )
        if attn.residual_connection:
            hidden_states = hidden_states + residual
        hidden_states = hidden_states / attn.rescale_output_factor
        return hidden_states


@contextmanager
def attention_control(
    unet: nn.Module, controller: AttentionController
) -> Iterator[AttentionController]:
    """Route every attention layer of `unet` through `controller` inside a `with` block.

    Installs a `ControlledAttnProcessor` around each current processor with `set_attn_processor`
    and a forward pre-hook that records the latent size; on exit (exceptions included) the original
    processor objects are put back and the hook removed.
    """
    originals = dict(unet.attn_processors)
    latent = _LatentSize()
    wrapped = {
        name: ControlledAttnProcessor(processor, controller, name, latent)
        for name, processor in originals.items()
    }
    handle = unet.register_forward_pre_hook(latent.hook, with_kwargs=True)
    try:
        unet.set_attn_processor(wrapped)
        yield controller
    finally:
        handle.remove()
        unet.set_attn_processor(dict(originals))  # set_attn_processor pops from the dict
