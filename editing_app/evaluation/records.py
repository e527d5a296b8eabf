"""What a case leaves behind: its metrics rows, its configuration key, result.json written safely.

A row is one result of one case (a sweep gives several per case) as a flat dict:

- identity: `case_id`, `edit_type`, `suite`, `method`, `base_model`, `variant`, `kind`
  ("edit" or "reconstruction"), `is_reconstruction`, `result_index`, `label`, `image` (the PNG,
  relative to the case folder), `status` ("ok" / "failed"), `error`;
- prompts: `source_prompt`, `target_prompt`, `score_text` (what CLIP scored it against);
- the result's parameters as `param.<name>` (eta, seed, noise_lambda, inversion, ...) and the
  stage overrides as `train.<name>`; lists and dicts are JSON text;
- metrics (`editing_app.evaluation.scoring`), `reconstruction_psnr` for reconstructions, the demo
  oracle's `success`, `preserved`, `oracle_<attribute>`; `train_seconds`, `edit_seconds` (the
  case's wall times: a sweep's results share them).
Missing metrics are None (JSON null, an empty CSV cell).
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import tempfile
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

from editing_app.evaluation.scoring import oracle_fields
from editing_app.evaluation.stages import plan_record
from editing_app.evaluation.suites import Case

__all__ = ["base_row", "digest", "fingerprint", "result_rows", "scalar", "write_json"]


def write_json(path: Path, data: Any) -> None:
    """Write JSON atomically (a temporary file in the same folder, then a rename)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w") as f:
            json.dump(data, f, indent=1, default=str)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def fingerprint(cfg: DictConfig, stage_cfg: DictConfig | None) -> dict[str, Any]:
    """Everything that decides a case's results: method, base model, stage (with its overrides),
    the trainer's step limit and precision, precision, seed, metric and CLIP settings. Device,
    shard and output settings are left out (they do not change results)."""
    return {
        "method": OmegaConf.to_container(cfg.method, resolve=True),
        "base_model": OmegaConf.to_container(cfg.base_model, resolve=True),
        "stage": plan_record(stage_cfg),
        "trainer": {k: cfg.trainer.get(k) for k in ("max_steps", "precision")},
        "precision": cfg.precision,
        "seed": cfg.seed,
        "metrics": OmegaConf.to_container(cfg.metrics, resolve=True),
        "clip": OmegaConf.to_container(cfg.clip, resolve=True) if cfg.get("clip") else None,
        "case_blend_words": cfg.get("case_blend_words", False),
    }


def digest(*parts: Any) -> str:
    """A short stable hash of JSON-able `parts`."""
    text = json.dumps(parts, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def scalar(value: Any) -> Any:
    """A CSV-friendly cell: scalars as they are (NaN -> None), anything else as JSON text."""
    if isinstance(value, float) and math.isnan(value):
        return None
    if isinstance(value, (str, int, float, bool)) or value is None:
        return value
    return json.dumps(value, sort_keys=True, default=str)


def base_row(
    cfg: DictConfig, case: Case, variant: str, train: dict[str, Any], timing: dict[str, Any]
) -> dict[str, Any]:
    """The columns every row of a case shares (a failed case has only these)."""
    return {
        "case_id": case.case_id,
        "edit_type": case.edit_type,
        "suite": cfg.suite.get("name", ""),
        "method": cfg.method.get("name", ""),
        "base_model": cfg.base_model.get("name", ""),
        "variant": variant,
        "kind": "edit",
        "status": "ok",
        "error": None,
        "source_prompt": case.source_prompt,
        "target_prompt": case.target_prompt,
        **timing,
        **{f"train.{k}": scalar(v) for k, v in train.items()},
    }


def result_rows(
    base: dict[str, Any],
    case: Case,
    results: list,
    texts: list[str],
    scores: list[dict[str, float]],
    folder: Path,
) -> list[dict[str, Any]]:
    """One row per result (`EditResult`s in the editor's order, with their CLIP texts and metric
    dicts); image paths follow `editing.io.outputs.write_outputs` (edit.png, samples/NNN_*.png)."""
    rows = []
    for k, (result, text, metrics) in enumerate(zip(results, texts, scores)):
        recon = "reconstruction" in result.label.lower()
        image = "edit.png"
        if len(results) > 1:
            found = sorted((folder / "samples").glob(f"{k:03d}_*.png"))
            image = str(found[0].relative_to(folder)) if found else ""
        row = {
            **base,
            "kind": "reconstruction" if recon else "edit",
            "is_reconstruction": recon,
            "result_index": k,
            "label": result.label,
            "image": image,
            "score_text": text,
            **{f"param.{n}": scalar(v) for n, v in result.params.items() if n != "method"},
            **{n: scalar(v) for n, v in metrics.items()},
            "reconstruction_psnr": scalar(metrics["psnr"]) if recon else None,
        }
        row.update(oracle_fields(result.image, case.extra, case.edit_type, recon))
        rows.append(row)
    return rows
