"""Per-result metrics of a benchmark case: fidelity, text alignment, background, and the oracle.

For one case with input x and results y_1..y_K (all at the model resolution, [0, 1]):

- `clip_score` (100 max(cos, 0) of y_k and its text, torchmetrics' CLIPScore definition),
  `clip_image_similarity` (cosine of the CLIP image embeddings of y_k and x),
- `lpips`, `one_minus_lpips`, `psnr` (dB), `ssim`, `mse` of y_k against x,
- with a mask (1 = edited region): `background_psnr`, `background_lpips`, `background_mse`,
  `background_ssim` outside it and `edit_region_clip_score` inside it (PIE-Bench's metrics;
  `background_normalize` chooses how MSE/PSNR average, see `editing.metrics.masked_mse`),
- with a known ideal result (the demo world's target render): `target_psnr`,
- for a reconstruction result (label contains "reconstruction"): `reconstruction_psnr` = `psnr`.

Metrics that cannot be computed are NaN (no CLIP; LPIPS on images under its minimum size; LPIPS
weights unavailable), each announced once in the log. `oracle_fields` adds the demo world's
attribute verdicts (`success`, `preserved`, `oracle_<attribute>`).
"""

from __future__ import annotations

import logging
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

import editing.metrics as M
from editing.models.clip import ClipModel

log = logging.getLogger(__name__)

__all__ = ["ORACLE_ATTRIBUTES", "Scorer", "oracle_fields", "to_unit"]

NAN = float("nan")
ORACLE_ATTRIBUTES = ("colour", "shape", "size", "position", "background", "count")
# The attribute each demo edit type changes (add/remove change the object count).
EDITED_ATTRIBUTE = {
    "colour": "colour",
    "shape": "shape",
    "size": "size",
    "position": "position",
    "background": "background",
    "add": "count",
    "remove": "count",
}


def to_unit(x: Tensor) -> Tensor:
    """[-1, 1] images ([3, H, W] or [B, 3, H, W]) -> float32 [B, 3, H, W] in [0, 1]."""
    x = x.detach().float()
    if x.ndim == 3:
        x = x[None]
    return ((x + 1) / 2).clamp(0, 1)


class Scorer:
    """Computes the metrics rows of a case; built once per run (CLIP and LPIPS are loaded once).

    Args:
        clip: a CLIP for the CLIP metrics, or None (they are NaN).
        lpips_net: LPIPS backbone ("alex", "vgg", "squeeze") or None to skip LPIPS.
        device: where the metrics run.
        background_normalize: "region" (MSE of the background pixels) or "image" (PIE-Bench's
            reference numbers: masked image MSE averaged over the whole image).
    """

    def __init__(
        self,
        clip: ClipModel | None,
        lpips_net: str | None = "alex",
        device: str | torch.device = "cpu",
        background_normalize: str = "region",
    ) -> None:
        self.clip = clip
        self.device = torch.device(device)
        self.background_normalize = background_normalize
        self.lpips_net = lpips_net
        self._warned: set[str] = set()
        if lpips_net:
            try:
                from editing.models.lpips_weights import make_lpips

                make_lpips(lpips_net, self.device)
            except Exception as err:  # weights unavailable: LPIPS metrics are skipped
                self._warn("lpips", f"LPIPS metrics skipped: {str(err).splitlines()[0]}")
                self.lpips_net = None

    def _warn(self, key: str, message: str) -> None:
        if key not in self._warned:
            self._warned.add(key)
            log.warning(message)

    def _lpips(self, fn, *args) -> Tensor:
        if self.lpips_net is None:
            return torch.full((args[0].shape[0],), NAN)
        from editing.models.lpips_weights import LPIPS_MIN_SIZE, canonical_net

        least = LPIPS_MIN_SIZE[canonical_net(self.lpips_net)]
        if min(args[0].shape[-2:]) < least:
            self._warn(
                "lpips_size",
                f"LPIPS skipped: images are {tuple(args[0].shape[-2:])}, LPIPS "
                f"net={self.lpips_net} needs at least {least}x{least}",
            )
            return torch.full((args[0].shape[0],), NAN)
        return fn(*args, net=self.lpips_net).cpu()

    @torch.no_grad()
    def score(
        self,
        source: Tensor,
        results: Tensor,
        texts: list[str],
        mask: Tensor | None = None,
        target: Tensor | None = None,
    ) -> list[dict[str, float]]:
        """One metrics dict per result.

        Args:
            source: the input [1, 3, H, W] in [0, 1].
            results: the K results [K, 3, h, w] in [0, 1] (resized to H x W when they differ).
            texts: the text each result is scored against (K strings).
            mask: [1, 1, H, W] in {0, 1} (1 = edited region) or None.
            target: the ideal result [1, 3, H, W] in [0, 1] or None.
        """
        x = source.to(self.device, torch.float32)
        y = results.to(self.device, torch.float32)
        if y.shape[-2:] != x.shape[-2:]:
            y = F.interpolate(y, size=x.shape[-2:], mode="bicubic", antialias=True).clamp(0, 1)
        k = y.shape[0]
        xs = x.expand(k, -1, -1, -1)
        out: dict[str, Tensor] = {
            "psnr": M.psnr(y, xs),
            "ssim": M.ssim(y, xs),
            "mse": M.mse(y, xs),
            "lpips": self._lpips(M.lpips_distance, y, xs),
        }
        out["one_minus_lpips"] = 1 - out["lpips"].cpu()
        if self.clip is not None:
            out["clip_score"] = M.clip_score(self.clip, y, texts)
            out["clip_image_similarity"] = M.clip_image_similarity(self.clip, y, xs)
        else:
            out["clip_score"] = out["clip_image_similarity"] = torch.full((k,), NAN)
        if mask is not None:
            m = mask.to(self.device, torch.float32)
            norm = self.background_normalize
            out["background_psnr"] = M.masked_psnr(y, xs, m, "outside", norm)
            out["background_mse"] = M.masked_mse(y, xs, m, "outside", norm)
            out["background_ssim"] = M.masked_ssim(y, xs, m, "outside")
            out["background_lpips"] = self._lpips(M.masked_lpips, y, xs, m, "outside")
            out["edit_region_clip_score"] = (
                M.masked_clip_score(self.clip, y, texts, m, "inside")
                if self.clip is not None
                else torch.full((k,), NAN)
            )
        if target is not None:
            out["target_psnr"] = M.psnr(y, target.to(self.device).expand(k, -1, -1, -1))
        columns = {name: values.float().cpu().tolist() for name, values in out.items()}
        return [{name: float(v[i]) for name, v in columns.items()} for i in range(k)]


def oracle_fields(image: Tensor, extra: dict[str, Any], edit_type: str, reconstruction: bool):
    """The demo world's verdicts on one result (image [3, H, W] in [-1, 1]).

    `oracle_<attribute>` (colour, shape, size, position, background, count): the reading agrees with
    the target scene (the source scene for a reconstruction). `success`: the edited attribute
    reached its target value (add: the new object found with all its attributes; remove: one
    object left); None for a reconstruction. `preserved`: everything else kept (add/remove: the
    objects that stay, with all their attributes, and the background).
    Returns {} when the case carries no scenes (not a demo case).
    """
    from demo_world.oracle import judge, judge_object, read_image

    source, target = extra.get("source_scene"), extra.get("target_scene")
    if source is None or target is None:
        return {}
    reading = read_image(image)
    scene = source if reconstruction else target
    verdict = judge(reading, scene)
    fields: dict[str, Any] = {f"oracle_{a}": bool(verdict[a]) for a in ORACLE_ATTRIBUTES}
    if reconstruction:
        fields["success"] = None
        fields["preserved"] = all(verdict.values())
        return fields
    attribute = EDITED_ATTRIBUTE.get(edit_type)
    if attribute is None:
        raise ValueError(f"no oracle rule for demo edit type {edit_type!r}")
    if edit_type in ("add", "remove"):
        kept = source.objects if edit_type == "add" else target.objects
        kept_ok = all(all(judge_object(reading, spec).values()) for spec in kept)
        success = verdict["count"]
        if edit_type == "add":
            success = success and all(judge_object(reading, target.objects[-1]).values())
        fields["success"] = bool(success)
        fields["preserved"] = bool(kept_ok and verdict["background"])
    else:
        fields["success"] = bool(verdict[attribute])
        fields["preserved"] = all(v for a, v in verdict.items() if a != attribute)
    return fields
