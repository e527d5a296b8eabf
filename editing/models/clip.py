"""CLIP through open_clip, from local files only: differentiable encoders, loading and saving.

`ClipModel` wraps an open_clip model with its tokenizer and preprocessing (input size, mean, std,
resize mode) so that callers hand it images as tensors in [0, 1] and get L2-normalised embeddings.
The image path is pure torch (antialiased resize + normalisation, no PIL), so gradients flow back
to the pixels, as CLIP guidance (Blended Diffusion) needs.

Storage is open_clip's hub folder layout, loaded with open_clip's own `local-dir:` schema::

    DIR/open_clip_config.json          {"model_cfg": {...}, "preprocess_cfg": {...}}
    DIR/open_clip_model.safetensors    (or open_clip_pytorch_model.bin)
    DIR/tokenizer files                (only for HF tokenizers; the default BPE ships with open_clip)

or a single checkpoint file plus a built-in open_clip architecture name (`ViT-B-16`). Nothing is
ever downloaded. `save_clip` writes the folder layout (the project's demo CLIP ships that way).
"""

from __future__ import annotations

import copy
import json
import os
import tempfile
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path
from pickle import UnpicklingError
from typing import Any

import open_clip
import torch
import torch.nn.functional as F
from open_clip.tokenizer import HFTokenizer
from open_clip.transform import PreprocessCfg, merge_preprocess_dict
from safetensors import SafetensorError
from safetensors.torch import save_file
from torch import Tensor, nn

from editing.errors import UserInputError

__all__ = [
    "CONFIG_NAME",
    "WEIGHT_NAMES",
    "ClipModel",
    "build_clip",
    "load_clip",
    "save_clip",
    "spherical_distance",
]

CONFIG_NAME = "open_clip_config.json"
# The weight files open_clip's `local-dir:` loader prefers, in its order of preference.
WEIGHT_NAMES = (
    "open_clip_model.safetensors",
    "open_clip_pytorch_model.safetensors",
    "open_clip_pytorch_model.bin",
    "open_clip_pytorch_model.pth",
)
_HOW = (
    "give one with clip.path=/dir/with/open_clip_config.json (an open_clip folder holding "
    f"{WEIGHT_NAMES[0]} or {WEIGHT_NAMES[2]}), or clip.path=/x/ViT-B-16.pt clip.name=ViT-B-16 "
    "(a checkpoint file plus its open_clip architecture), or use the project's shipped demo CLIP"
)


def spherical_distance(u: Tensor, v: Tensor) -> Tensor:
    """Blended Diffusion's CLIP distance `2 * arcsin(|u - v| / 2) ** 2` over the last dimension.

    `u`, `v`: [..., D] embeddings (broadcastable); they are L2-normalised first, as in the reference
    code's `d_clip_loss` (Avrahami et al., blended-diffusion `optimization/losses.py`), so the value
    is half the squared great-circle angle: 0 for equal directions, pi^2 / 2 for opposite ones.
    Returns [...] (the broadcast batch shape), differentiable.
    """
    u = F.normalize(u, dim=-1)
    v = F.normalize(v, dim=-1)
    return (u - v).norm(dim=-1).div(2).clamp(max=1.0).arcsin().pow(2).mul(2)


class ClipModel(nn.Module):
    """An open_clip model with its tokenizer and preprocessing; embeddings are L2-normalised.

    Args:
        model: an open_clip `CLIP` / `CustomTextCLIP`.
        tokenizer: its open_clip tokenizer (`SimpleTokenizer` or `HFTokenizer`).
        model_cfg: the architecture dict the model was built from (saved by `save_clip`).
        preprocess_cfg: open_clip preprocessing (size, mean, std, interpolation, resize_mode,
            fill_color); default: what open_clip attached to `model`.
    """

    def __init__(
        self,
        model: nn.Module,
        tokenizer: Any,
        model_cfg: dict[str, Any],
        preprocess_cfg: dict[str, Any] | None = None,
    ) -> None:
        super().__init__()
        self.model = model
        self.tokenizer = tokenizer
        self.model_cfg = copy.deepcopy(model_cfg)
        pp = preprocess_cfg or open_clip.get_model_preprocess_cfg(model)
        size = getattr(model.visual, "image_size", None) or pp.get("size", 224)
        self.preprocess_cfg = merge_preprocess_dict(asdict(PreprocessCfg()), {**pp, "size": size})
        open_clip.set_model_preprocess_cfg(model, self.preprocess_cfg)
        h, w = (size, size) if isinstance(size, int) else tuple(size)
        self.image_size: tuple[int, int] = (int(h), int(w))
        device = next(model.parameters()).device
        mean, std = _channels(self.preprocess_cfg["mean"]), _channels(self.preprocess_cfg["std"])
        self.register_buffer("mean", mean.to(device), persistent=False)
        self.register_buffer("std", std.to(device), persistent=False)

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    @property
    def dtype(self) -> torch.dtype:
        return next(self.model.visual.parameters()).dtype

    def preprocess(self, x: Tensor) -> Tensor:
        """[B, 3, H, W] in [0, 1] -> the model's normalised input [B, 3, h, w], differentiably.

        Follows open_clip's eval transform without PIL: `resize_mode` "shortest" (resize the short
        side, centre crop), "squash" (resize to h x w) or "longest" (resize the long side, pad with
        `fill_color`); antialiased bicubic (or bilinear) interpolation; then (x - mean) / std.
        Values are not clamped after resizing (bicubic overshoot is kept, gradients are not cut).
        """
        if x.ndim != 4 or x.shape[1] != 3:
            raise ValueError(f"CLIP images must be [B, 3, H, W], got shape {tuple(x.shape)}")
        x = x.to(device=self.mean.device, dtype=torch.float32)
        (th, tw), (h, w) = self.image_size, x.shape[-2:]
        mode = "bilinear" if self.preprocess_cfg["interpolation"] == "bilinear" else "bicubic"
        resize_mode = self.preprocess_cfg["resize_mode"]
        if resize_mode == "squash":
            size = (th, tw)
        elif resize_mode == "shortest" and th == tw:  # torchvision Resize(int): long side truncated
            short, long = min(h, w), max(h, w)
            new_long = int(th * long / short)
            size = (th, new_long) if h <= w else (new_long, th)
        else:  # open_clip's ResizeKeepRatio: both sides rounded
            scale = max(th / h, tw / w) if resize_mode == "shortest" else min(th / h, tw / w)
            size = (max(1, round(h * scale)), max(1, round(w * scale)))
        if size != (h, w):
            x = F.interpolate(x, size=size, mode=mode, align_corners=False, antialias=True)
        x = _centre_crop_or_pad(x, (th, tw), self.preprocess_cfg["fill_color"] / 255.0)
        return (x - self.mean) / self.std

    def encode_image(self, x: Tensor) -> Tensor:
        """Images [B, 3, H, W] in [0, 1] -> L2-normalised float32 embeddings [B, D] (differentiable)."""
        features = self.model.encode_image(self.preprocess(x).to(self.dtype))
        return F.normalize(features.float(), dim=-1)

    @property
    def context_length(self) -> int:
        """The most tokens (start/end tokens included) the text encoder reads."""
        return int(self.tokenizer.context_length)

    def count_tokens(self, text: str) -> int:
        """Tokens of `text` before any truncation, start/end tokens included."""
        if isinstance(self.tokenizer, HFTokenizer):
            cleaned = self.tokenizer.clean_fn(text)
            return len(self.tokenizer.tokenizer(cleaned, truncation=False).input_ids)
        return len(self.tokenizer.encode(text)) + 2  # open_clip's BPE: + start and end tokens

    def check_text(self, texts: Sequence[str], what: str = "prompt") -> None:
        """Refuse a text longer than the context: the tokenizer would silently cut its end."""
        limit = self.context_length
        for text in texts:
            n = self.count_tokens(text)
            if n > limit:
                raise UserInputError(
                    f"{what} {text[:40]!r}... is {n} tokens long; the CLIP text encoder takes at "
                    f"most {limit} (start/end tokens included). Shorten it."
                )

    def encode_text(self, texts: str | Sequence[str], what: str = "prompt") -> Tensor:
        """Texts (B strings) -> L2-normalised float32 embeddings [B, D].

        A text longer than the context is refused (`UserInputError` naming `what` and the limit).
        """
        texts = [texts] if isinstance(texts, str) else list(texts)
        if not texts or not all(isinstance(t, str) for t in texts):
            raise ValueError(f"encode_text needs a non-empty list of strings, got {texts!r}")
        self.check_text(texts, what)
        tokens = self.tokenizer(texts).to(self.device)
        return F.normalize(self.model.encode_text(tokens).float(), dim=-1)

    def forward(self, x: Tensor) -> Tensor:
        """Same as `encode_image`."""
        return self.encode_image(x)


def _channels(values: Sequence[float]) -> Tensor:
    values = list(values) if isinstance(values, (list, tuple)) else [float(values)] * 3
    return torch.tensor(values, dtype=torch.float32).view(1, 3, 1, 1)


def _centre_crop_or_pad(x: Tensor, size: tuple[int, int], fill: float) -> Tensor:
    """Centre crop (or pad with `fill`) [B, C, H, W] to `size`, as open_clip's CenterCropOrPad."""
    (th, tw), (h, w) = size, x.shape[-2:]
    if h < th or w < tw:
        ph, pw = max(th - h, 0), max(tw - w, 0)
        pad = (pw // 2, pw - pw // 2, ph // 2, ph - ph // 2)
        x = F.pad(x, pad, value=fill)
        h, w = x.shape[-2:]
    top, left = int(round((h - th) / 2.0)), int(round((w - tw) / 2.0))
    return x[..., top : top + th, left : left + tw]


def build_clip(
    model_cfg: dict[str, Any],
    preprocess_cfg: dict[str, Any] | None = None,
    tokenizer: Any = None,
    device: str | torch.device = "cpu",
) -> ClipModel:
    """A randomly initialised open_clip model from an architecture dict (to train or test).

    `model_cfg` is what open_clip's model-config JSON files hold (`embed_dim`, `vision_cfg`,
    `text_cfg`, ...). The default tokenizer is open_clip's BPE `SimpleTokenizer` (needs
    `text_cfg.vocab_size >= 49408`) with the config's context length.
    """
    cfg = copy.deepcopy(model_cfg)
    text_cfg = cfg.get("text_cfg", {})
    custom_text = cfg.pop("custom_text", False) or "hf_model_name" in text_cfg
    model_class = open_clip.CustomTextCLIP if custom_text else open_clip.CLIP
    model = model_class(**cfg).to(device)
    if tokenizer is None:
        tokenizer = open_clip.SimpleTokenizer(context_length=text_cfg.get("context_length", 77))
        if text_cfg.get("vocab_size", 49408) < tokenizer.vocab_size:
            raise ValueError(
                f"text_cfg.vocab_size={text_cfg['vocab_size']} is smaller than open_clip's BPE "
                f"vocabulary ({tokenizer.vocab_size}); pass a tokenizer that fits"
            )
    pp = merge_preprocess_dict(asdict(PreprocessCfg()), preprocess_cfg or {})
    return ClipModel(model, tokenizer, model_cfg, pp)


def save_clip(clip: ClipModel, directory: str | Path) -> Path:
    """Write `clip` in open_clip's hub folder layout; `load_clip(directory)` reads it back.

    Writes `open_clip_config.json` ({"model_cfg", "preprocess_cfg"}), `open_clip_model.safetensors`
    and, for an `HFTokenizer`, its tokenizer files. Each file is written to a temporary name and
    renamed into place. Returns the directory.
    """
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    model_cfg = copy.deepcopy(clip.model_cfg)
    if isinstance(clip.tokenizer, HFTokenizer):
        clip.tokenizer.save_pretrained(str(directory))
        # open_clip's local-dir loader uses an HF tokenizer (read from DIR) only when this is set.
        model_cfg["text_cfg"].setdefault("hf_tokenizer_name", directory.name or "tokenizer")
    elif not isinstance(clip.tokenizer, open_clip.SimpleTokenizer):
        raise ValueError(
            f"save_clip supports open_clip's SimpleTokenizer and HFTokenizer, got "
            f"{type(clip.tokenizer).__name__}"
        )
    pp = {k: clip.preprocess_cfg[k] for k in ("mean", "std", "interpolation", "resize_mode")}
    pp["fill_color"] = clip.preprocess_cfg["fill_color"]
    config = {"model_cfg": model_cfg, "preprocess_cfg": pp}
    tensors = {k: v.detach().cpu().contiguous() for k, v in clip.model.state_dict().items()}
    _atomic(directory / WEIGHT_NAMES[0], lambda p: save_file(tensors, p, metadata={"format": "pt"}))
    _atomic(directory / CONFIG_NAME, lambda p: Path(p).write_text(json.dumps(config, indent=2)))
    return directory


def _atomic(path: Path, write) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        write(tmp)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def load_clip(
    path: str | os.PathLike | None,
    name: str | None = None,
    device: str | torch.device = "cpu",
    precision: str = "fp32",
) -> ClipModel:
    """Load an open_clip CLIP from local files, frozen and in eval mode.

    Args:
        path: an open_clip folder (`open_clip_config.json` + weights, see the module docstring) or
            a single checkpoint file (then `name` is required).
        name: the open_clip architecture of a single checkpoint file, e.g. "ViT-B-16"; ignored
            for a folder (its config says).
        device: where to put the model.
        precision: open_clip precision ("fp32", "bf16", "fp16", ...).

    Raises `UserInputError` (one line: what is missing and how to give a CLIP) for no path, a
    missing path, a folder without config or weights, an unknown architecture or a checkpoint that
    does not load.
    """
    if path is None or not str(path).strip():
        raise UserInputError(f"no CLIP model given (clip.path is empty); {_HOW}")
    path = Path(path).expanduser()
    if not path.exists():
        raise UserInputError(f"clip.path={path} does not exist; {_HOW}")
    try:
        if path.is_dir():
            return _load_dir(path, device, precision)
        return _load_file(path, name, device, precision)
    except (
        RuntimeError,
        ValueError,
        OSError,
        KeyError,
        EOFError,
        UnpicklingError,
        SafetensorError,
    ) as e:
        if isinstance(e, UserInputError):
            raise
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise UserInputError(f"could not load the CLIP at clip.path={path}: {first}") from e


def _load_dir(path: Path, device, precision: str) -> ClipModel:
    config_file = path / CONFIG_NAME
    if not config_file.is_file():
        raise UserInputError(f"clip.path={path} has no {CONFIG_NAME}; {_HOW}")
    config = json.loads(config_file.read_text())
    if "model_cfg" not in config:
        raise UserInputError(f"{config_file} has no 'model_cfg' entry; {_HOW}")
    if not any((path / n).is_file() for n in WEIGHT_NAMES):
        raise UserInputError(f"clip.path={path} has {CONFIG_NAME} but no weights file; {_HOW}")
    model = open_clip.create_model(
        f"local-dir:{path}", device=device, precision=precision, weights_only=True
    )
    tokenizer = open_clip.get_tokenizer(f"local-dir:{path}")
    return _frozen(ClipModel(model, tokenizer, config["model_cfg"]))


def _load_file(path: Path, name: str | None, device, precision: str) -> ClipModel:
    if not name:
        raise UserInputError(
            f"clip.path={path} is a single checkpoint file: also give its open_clip architecture, "
            "e.g. clip.name=ViT-B-16, or point clip.path at a folder with open_clip_config.json"
        )
    model_cfg = open_clip.get_model_config(name)
    if model_cfg is None:
        known = ", ".join(m for m in open_clip.list_models() if m.startswith(("ViT-B", "RN50")))
        raise UserInputError(f"clip.name={name} is not an open_clip architecture (e.g. {known})")
    model = open_clip.create_model(
        name, pretrained=str(path), device=device, precision=precision, weights_only=True
    )
    return _frozen(ClipModel(model, open_clip.get_tokenizer(name), model_cfg))


def _frozen(clip: ClipModel) -> ClipModel:
    clip.eval().requires_grad_(False)
    return clip
