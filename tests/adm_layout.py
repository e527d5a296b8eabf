"""The OpenAI guided-diffusion (ADM) UNet layout for given flags, and its forward pass, written for
the tests from `guided_diffusion/unet.py`'s structure and independent of the converter:

- `adm_blocks(flags)`: the blocks of `UNetModel` in order (`input_blocks.K`, `middle_block`,
  `output_blocks.K`), each a list of layers ("res" with its in/out channels and up/down,
  "attn" with its channels and heads, "down"/"up" resampling convolutions);
- `adm_shapes(flags)`: every key of the checkpoint with its shape (a real file's key names);
- `random_adm_state_dict(flags, seed)`: random weights of that layout (no zero-initialised layers);
- `adm_forward(state, flags, x, t, y)`: ADM's forward pass on such a state dict, with its legacy
  QKV attention maths (heads split before q/k/v) or the new order, in plain torch functions.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor

GROUPS = 32


def _mult(flags) -> tuple[float, ...]:
    return flags.multipliers()


def adm_blocks(flags) -> list[tuple[str, list[tuple]]]:
    """[(module prefix, [layer, ...])]; a layer is ("conv_in", cin, cout), ("res", cin, cout,
    updown) with updown None | "down" | "up", ("attn", ch, heads), ("down", ch) or ("up", ch)."""
    c = flags.num_channels
    res = flags.attention_resolutions
    res = res.split(",") if isinstance(res, str) else res
    rates = {flags.image_size // int(r) for r in res}

    def heads(ch: int, up: bool) -> int:
        if flags.num_head_channels != -1:
            return ch // flags.num_head_channels
        return (
            flags.num_heads_upsample if up and flags.num_heads_upsample != -1 else flags.num_heads
        )

    ch = int(_mult(flags)[0] * c)
    blocks = [("input_blocks.0", [("conv_in", 3, ch)])]
    chans, ds, k = [ch], 1, 1
    for level, mult in enumerate(_mult(flags)):
        for _ in range(flags.num_res_blocks):
            layers = [("res", ch, int(mult * c), None)]
            ch = int(mult * c)
            if ds in rates:
                layers.append(("attn", ch, heads(ch, False)))
            blocks.append((f"input_blocks.{k}", layers))
            chans.append(ch)
            k += 1
        if level != len(_mult(flags)) - 1:
            layer = ("res", ch, ch, "down") if flags.resblock_updown else ("down", ch)
            blocks.append((f"input_blocks.{k}", [layer]))
            chans.append(ch)
            ds, k = ds * 2, k + 1
    blocks.append(
        (
            "middle_block",
            [("res", ch, ch, None), ("attn", ch, heads(ch, False)), ("res", ch, ch, None)],
        )
    )
    k = 0
    for level, mult in list(enumerate(_mult(flags)))[::-1]:
        for i in range(flags.num_res_blocks + 1):
            layers = [("res", ch + chans.pop(), int(c * mult), None)]
            ch = int(c * mult)
            if ds in rates:
                layers.append(("attn", ch, heads(ch, True)))
            if level and i == flags.num_res_blocks:
                layers.append(("res", ch, ch, "up") if flags.resblock_updown else ("up", ch))
                ds //= 2
            blocks.append((f"output_blocks.{k}", layers))
            k += 1
    return blocks


def adm_shapes(flags) -> dict[str, tuple[int, ...]]:
    """Every key of an ADM checkpoint of these flags with its shape."""
    c, emb = flags.num_channels, 4 * flags.num_channels
    shapes: dict[str, tuple[int, ...]] = {}

    def add(prefix: str, weight: tuple[int, ...]) -> None:
        shapes[f"{prefix}.weight"], shapes[f"{prefix}.bias"] = weight, (weight[0],)

    add("time_embed.0", (emb, c))
    add("time_embed.2", (emb, emb))
    if flags.class_cond:
        shapes["label_emb.weight"] = (1000, emb)
    for prefix, layers in adm_blocks(flags):
        for n, layer in enumerate(layers):
            p = f"{prefix}.{n}"
            if layer[0] == "conv_in":
                add(p, (layer[2], layer[1], 3, 3))
            elif layer[0] == "res":
                cin, cout = layer[1], layer[2]
                add(f"{p}.in_layers.0", (cin,))
                add(f"{p}.in_layers.2", (cout, cin, 3, 3))
                add(f"{p}.emb_layers.1", (2 * cout if flags.use_scale_shift_norm else cout, emb))
                add(f"{p}.out_layers.0", (cout,))
                add(f"{p}.out_layers.3", (cout, cout, 3, 3))
                if cin != cout:
                    add(f"{p}.skip_connection", (cout, cin, 1, 1))
            elif layer[0] == "attn":
                ch = layer[1]
                add(f"{p}.norm", (ch,))
                add(f"{p}.qkv", (3 * ch, ch, 1))
                add(f"{p}.proj_out", (ch, ch, 1))
            else:  # resampling convolutions
                add(f"{p}.{'op' if layer[0] == 'down' else 'conv'}", (layer[1], layer[1], 3, 3))
    last = int(_mult(flags)[0] * c)
    add("out.0", (last,))
    add("out.2", (6 if flags.learn_sigma else 3, last, 3, 3))
    return shapes


def random_adm_state_dict(flags, seed: int = 0) -> dict[str, Tensor]:
    """Random weights of the ADM layout: fan-in scaled, norms near identity (no zero layers, so
    every weight matters to the output)."""
    g = torch.Generator().manual_seed(seed)
    state = {}
    for key, shape in adm_shapes(flags).items():
        if len(shape) == 1 and (".norm." in key or "layers.0." in key or key.startswith("out.0")):
            base = 1.0 if key.endswith("weight") else 0.0
            state[key] = base + 0.1 * torch.randn(shape, generator=g)
        elif len(shape) == 1:
            state[key] = 0.1 * torch.randn(shape, generator=g)
        else:
            fan_in = math.prod(shape[1:])
            state[key] = torch.randn(shape, generator=g) / math.sqrt(fan_in)
    return state


# --- the forward pass --------------------------------------------------------------------------


def timestep_embedding(t: Tensor, dim: int, max_period: float = 10000.0) -> Tensor:
    """ADM's sinusoidal embedding [B, dim]: [cos(t f), sin(t f)], f = max_period^(-i / half)."""
    half = dim // 2
    freqs = torch.exp(-math.log(max_period) * torch.arange(half, dtype=torch.float32) / half)
    args = t.float()[:, None] * freqs[None]
    return torch.cat([torch.cos(args), torch.sin(args)], dim=-1)


def _norm(state, p: str, x: Tensor) -> Tensor:
    return F.group_norm(x, GROUPS, state[f"{p}.weight"], state[f"{p}.bias"], eps=1e-5)


def resblock(state, p: str, x: Tensor, emb: Tensor, updown, scale_shift: bool) -> Tensor:
    """ADM ResBlock: in_layers (norm, SiLU, [resample], conv), emb_layers, out_layers."""
    h = F.silu(_norm(state, f"{p}.in_layers.0", x))
    if updown == "down":
        h, x = F.avg_pool2d(h, 2), F.avg_pool2d(x, 2)
    elif updown == "up":
        h, x = (
            F.interpolate(h, scale_factor=2, mode="nearest"),
            F.interpolate(x, scale_factor=2, mode="nearest"),
        )
    h = F.conv2d(h, state[f"{p}.in_layers.2.weight"], state[f"{p}.in_layers.2.bias"], padding=1)
    e = F.linear(F.silu(emb), state[f"{p}.emb_layers.1.weight"], state[f"{p}.emb_layers.1.bias"])
    e = e[:, :, None, None]
    if scale_shift:
        scale, shift = e.chunk(2, dim=1)
        h = F.silu(_norm(state, f"{p}.out_layers.0", h) * (1 + scale) + shift)
    else:
        h = F.silu(_norm(state, f"{p}.out_layers.0", h + e))
    h = F.conv2d(h, state[f"{p}.out_layers.3.weight"], state[f"{p}.out_layers.3.bias"], padding=1)
    if f"{p}.skip_connection.weight" in state:
        x = F.conv2d(x, state[f"{p}.skip_connection.weight"], state[f"{p}.skip_connection.bias"])
    return x + h


def attention(state, p: str, x: Tensor, heads: int, legacy: bool = True) -> Tensor:
    """ADM AttentionBlock: x + proj_out(attention(qkv(norm(x)))) on [B, C, H, W].

    Legacy order (QKVAttentionLegacy): qkv [B, 3C, T] viewed as [B * heads, 3 * ch, T] and split
    into q, k, v per head; new order (QKVAttention): split into q, k, v first, then heads."""
    b, c, *spatial = x.shape
    x = x.reshape(b, c, -1)
    qkv = F.conv1d(_norm(state, f"{p}.norm", x), state[f"{p}.qkv.weight"], state[f"{p}.qkv.bias"])
    ch, length = c // heads, x.shape[-1]
    if legacy:
        q, k, v = qkv.reshape(b * heads, 3 * ch, length).split(ch, dim=1)
    else:
        q, k, v = (part.reshape(b * heads, ch, length) for part in qkv.chunk(3, dim=1))
    scale = 1 / math.sqrt(math.sqrt(ch))
    weight = torch.softmax(torch.einsum("bct,bcs->bts", q * scale, k * scale), dim=-1)
    a = torch.einsum("bts,bcs->bct", weight, v).reshape(b, c, length)
    h = F.conv1d(a, state[f"{p}.proj_out.weight"], state[f"{p}.proj_out.bias"])
    return (x + h).reshape(b, c, *spatial)


def _layer(state, flags, p: str, layer, h: Tensor, emb: Tensor) -> Tensor:
    kind = layer[0]
    if kind == "conv_in":
        return F.conv2d(h, state[f"{p}.weight"], state[f"{p}.bias"], padding=1)
    if kind == "res":
        return resblock(state, p, h, emb, layer[3], flags.use_scale_shift_norm)
    if kind == "attn":
        return attention(state, p, h, layer[2], legacy=not flags.use_new_attention_order)
    if kind == "down":
        return F.conv2d(h, state[f"{p}.op.weight"], state[f"{p}.op.bias"], stride=2, padding=1)
    h = F.interpolate(h, scale_factor=2, mode="nearest")
    return F.conv2d(h, state[f"{p}.conv.weight"], state[f"{p}.conv.bias"], padding=1)


@torch.no_grad()
def adm_forward(state, flags, x: Tensor, t: Tensor, y: Tensor | None = None) -> Tensor:
    """ADM UNetModel.forward(x [B, 3, H, W], t [B], y [B] or None) -> [B, 3 or 6, H, W] (fp32)."""
    emb = timestep_embedding(t, flags.num_channels)
    emb = F.linear(emb, state["time_embed.0.weight"], state["time_embed.0.bias"])
    emb = F.linear(F.silu(emb), state["time_embed.2.weight"], state["time_embed.2.bias"])
    if y is not None:
        emb = emb + state["label_emb.weight"][y]
    hs, h = [], x
    for prefix, layers in adm_blocks(flags):
        if prefix.startswith("output"):
            h = torch.cat([h, hs.pop()], dim=1)
        for n, layer in enumerate(layers):
            h = _layer(state, flags, f"{prefix}.{n}", layer, h, emb)
        if prefix.startswith("input"):
            hs.append(h)
    h = F.silu(_norm(state, "out.0", h))
    return F.conv2d(h, state["out.2.weight"], state["out.2.bias"], padding=1)
