"""The benchmark loop: every case of a suite (or of one shard) -> images, metrics, result.json.

For each case: build its `Inputs` at the model resolution, run the method's training stage(s)
when it needs them (artifacts in `<run>/cases/<id>/checkpoints`), edit, write the images with
`write_outputs` into `<run>/cases/<id>/`, score every result, and write `result.json` last
(atomically). `<run>` is `output_dir`, or `output_dir/<variant>` when a variant is named (so that
the runs of a sweep over stage settings can share one output_dir).

- The base model, the editor, CLIP and LPIPS are loaded once and reused for every case.
- Resumable: a case whose result.json exists, succeeded and was made with the same configuration
  (`records.fingerprint` plus the case's prompts) is skipped; a failed one is retried
  (`retry_failed`), one made with another configuration is re-run; each decision is logged.
- A failing case (any exception, bad inputs included) is recorded as a failed row with its error
  and the run goes on; the report says whether every case failed.
- The same `seed` is set before each case's stages and edit, so a case's result does not depend
  on the shard it lands in or the order it runs in.
"""

from __future__ import annotations

import json
import logging
import os
import re
import shutil
import socket
import time
import traceback
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import hydra
import torch
from omegaconf import DictConfig, OmegaConf
from PIL import Image

from editing.editors.apply import apply_editor
from editing.errors import UserInputError
from editing.io.images import to_uint8
from editing.io.outputs import write_outputs
from editing.models.cascade import SuperResolutionSettings
from editing_app.evaluation.case_inputs import case_inputs, case_target
from editing_app.evaluation.records import base_row, digest, fingerprint, result_rows, write_json
from editing_app.evaluation.scoring import Scorer, to_unit
from editing_app.evaluation.stages import (
    overrides_record,
    run_stages,
    stage_plan,
    trainer_follows_device,
)
from editing_app.evaluation.suites import Case, case_record, load_cases

log = logging.getLogger(__name__)

__all__ = ["RunReport", "run_dir", "run_suite", "variant_name"]


@dataclass
class RunReport:
    """What one run (one shard) did with its cases."""

    run_dir: Path
    attempted: int = 0
    ok: int = 0
    failed: int = 0
    skipped: int = 0

    @property
    def all_failed(self) -> bool:
        return self.failed > 0 and self.ok == 0 and self.skipped == 0


def variant_name(cfg: DictConfig) -> str:
    """The run's variant: as given, or for `auto` named after the train_overrides."""
    variant = cfg.get("variant") or ""
    if variant == "auto":
        record = overrides_record(list(cfg.get("train_overrides") or []))
        variant = ",".join(f"{k}={v}" for k, v in record.items())
    return re.sub(r"[^A-Za-z0-9._=,-]+", "_", str(variant)).strip("_")[:100]


def run_dir(cfg: DictConfig) -> Path:
    variant = variant_name(cfg)
    return Path(cfg.output_dir) / variant if variant else Path(cfg.output_dir)


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


class _Run:
    """What every case of a run shares: config, model, editor, scorer, folders."""

    def __init__(self, cfg: DictConfig) -> None:
        from editing_app.runtime import precision_context, resolve_device

        self.cfg = cfg
        self.dir = run_dir(cfg)
        self.variant = variant_name(cfg)
        self.editor = hydra.utils.instantiate(cfg.method)  # refuses bad method settings first
        self.sr = SuperResolutionSettings(**cfg.get("sr", {}))
        self.device = resolve_device(cfg.device)
        trainer_follows_device(cfg, self.device)
        if self.device.type == "cpu":
            from editing_app.cpu_threads import set_cpu_threads

            set_cpu_threads(cfg.get("cpu_threads", "auto"))
        self.stage_cfg = stage_plan(cfg)
        precision_context(cfg.precision, self.device)  # refuses a bad precision early
        self.context = lambda: precision_context(cfg.precision, self.device)
        self.key = fingerprint(cfg, self.stage_cfg)
        overrides = list(cfg.get("train_overrides") or []) if self.stage_cfg is not None else []
        self.train_record = overrides_record(overrides)  # rows record them only when a stage runs
        self.config_yaml = OmegaConf.to_yaml(cfg, resolve=True)
        self.model = None
        self.scorer: Scorer | None = None

    def case_dir(self, case: Case) -> Path:
        return self.dir / "cases" / case.case_id

    def case_key(self, case: Case) -> str:
        return digest(self.key, case_record(case))

    def status(self, case: Case) -> str | None:
        """ "done", "failed", "stale" (another configuration) or None (never run)."""
        path = self.case_dir(case) / "result.json"
        if not path.is_file():
            return None
        try:
            record = json.loads(path.read_text())
        except (OSError, json.JSONDecodeError):
            return "stale"
        if record.get("key") != self.case_key(case):
            return "stale"
        return "done" if record.get("status") == "ok" else "failed"

    def load(self) -> None:
        """The base model, CLIP and LPIPS, once for every case."""
        from editing.models.clip import load_clip

        cfg = self.cfg
        start = time.perf_counter()
        self.model = hydra.utils.instantiate(cfg.base_model).to(self.device)
        log.info("loaded base model %s in %.1f s", cfg.base_model.name, time.perf_counter() - start)
        clip, clip_cfg = None, cfg.get("clip") or {}
        if not clip_cfg.get("path"):
            log.info("no CLIP (clip.path is empty): CLIP metrics are skipped")
        else:
            try:
                clip = load_clip(clip_cfg.path, clip_cfg.get("name")).to(self.device)
            except UserInputError as err:
                if cfg.metrics.require_clip:
                    raise
                log.warning("CLIP metrics skipped: %s", err)
        m = cfg.metrics
        self.scorer = Scorer(clip, m.lpips_net, self.device, m.background_normalize)

    def editor_for(self, case: Case):
        """The editor; with `case_blend_words`, one blending the case's words (PIE-Bench's P2P)."""
        words = case.extra.get("blend_words")
        if self.cfg.get("case_blend_words") and words and "blend_words" in self.cfg.method:
            entries = [list(w) or None for w in words]
            if any(entries):
                return hydra.utils.instantiate(self.cfg.method, blend_words=entries)
        return self.editor

    def run_case(self, case: Case) -> dict[str, Any]:
        """Stages, edit, images, rows and result.json of one case; never raises for the case."""
        cfg, model = self.cfg, self.model
        folder = self.case_dir(case)
        checkpoints = folder / "checkpoints"
        timing: dict[str, Any] = {"train_seconds": 0.0, "edit_seconds": None}
        record: dict[str, Any] = {
            "case_id": case.case_id,
            "key": self.case_key(case),
            "status": "failed",
            "error": None,
            "case": case_record(case),
            "variant": self.variant,
            "train_overrides": list(cfg.get("train_overrides") or []),
            "worker": {
                "host": socket.gethostname(),
                "pid": os.getpid(),
                "shard": cfg.suite.get("shard", 0),
                "num_shards": cfg.suite.get("num_shards", 1),
            },
        }
        try:
            # 1. Inputs at the model resolution.
            inputs = case_inputs(case, model.resolution, cfg.seed, checkpoints)
            checkpoints.mkdir(parents=True, exist_ok=True)
            # 2. The training stage(s) the method needs, on the shared base model.
            if self.stage_cfg is not None:
                start = time.perf_counter()
                run_stages(cfg, self.stage_cfg, model, inputs)
                model.to(self.device)
                timing["train_seconds"] = time.perf_counter() - start
            # 3. The edit.
            editor = self.editor_for(case)
            torch.manual_seed(int(cfg.seed))
            _sync(self.device)
            start = time.perf_counter()
            with self.context():
                results = apply_editor(editor, model, inputs, self.sr)
            _sync(self.device)
            timing["edit_seconds"] = time.perf_counter() - start
            if not results:
                raise RuntimeError("the method returned no results")
            # 4. Images, then one metrics row per result.
            self.write_images(folder, case, inputs, results)
            record["rows"] = self.rows(case, inputs, results, timing, folder)
            record["status"] = "ok"
        except Exception as err:  # recorded; the run goes on
            text = str(err).strip()
            record["error"] = f"{type(err).__name__}: {text.splitlines()[0] if text else ''}"
            record["traceback"] = traceback.format_exc()
            row = base_row(cfg, case, self.variant, self.train_record, timing)
            record["rows"] = [{**row, "status": "failed", "error": record["error"]}]
            log.error("case %s failed: %s", case.case_id, record["error"])
            self.restore_model()
        record.update(timing)
        if not cfg.keep_artifacts and checkpoints.exists():
            shutil.rmtree(checkpoints)
        write_json(folder / "result.json", record)
        return record

    def restore_model(self) -> None:
        """After a failure: the shared model back on its device, in eval mode, memory freed (a
        stage that failed mid-fit may leave it elsewhere)."""
        try:
            self.model.to(self.device).eval()
        except Exception as err:  # the next case will fail and say why
            log.warning("could not restore the base model on %s: %s", self.device, err)
        if self.device.type == "cuda":
            torch.cuda.empty_cache()

    def write_images(self, folder: Path, case: Case, inputs, results) -> None:
        """edit.png, samples/, grid.png, config.yaml (write_outputs), input.png, mask.png and the
        demo world's ideal target.png."""
        metadata = {
            "base_model": self.model.identity.name,
            "method": self.cfg.method.get("name", ""),
            "case_id": case.case_id,
        }
        config = f"# evaluate.py case {case.case_id}\n{self.config_yaml}"
        write_outputs(folder, results, inputs.image.pixels[0], config, metadata)
        Image.fromarray(to_uint8(inputs.image.pixels)).save(folder / "input.png")
        if inputs.mask is not None:
            mask = (inputs.mask[0, 0].numpy() * 255).astype("uint8")
            Image.fromarray(mask, "L").save(folder / "mask.png")
        target = case_target(case, self.model.resolution)
        if target is not None:
            Image.fromarray(to_uint8(target)).save(folder / "target.png")

    def rows(self, case: Case, inputs, results, timing, folder: Path) -> list[dict[str, Any]]:
        """Score every result (edits against their prompt, reconstructions against the target
        text like the edits) and build the rows."""
        texts = [
            case.target_prompt
            if "reconstruction" in r.label.lower()
            else str(r.params.get("prompt") or case.target_prompt)
            for r in results
        ]
        target = case_target(case, self.model.resolution)
        scores = self.scorer.score(
            to_unit(inputs.image.pixels),
            torch.cat([to_unit(r.image) for r in results]),
            texts,
            inputs.mask,
            None if target is None else to_unit(target),
        )
        base = base_row(self.cfg, case, self.variant, self.train_record, timing)
        return result_rows(base, case, results, texts, scores, folder)


def run_suite(cfg: DictConfig, cases: list[Case] | None = None) -> RunReport:
    """Run the configured method over this shard's cases (`load_cases(cfg.suite)` unless given);
    returns what happened."""
    cases = load_cases(cfg.suite) if cases is None else cases
    run = _Run(cfg)
    report = RunReport(run.dir)
    pending = []
    for case in cases:
        state = run.status(case)
        if state == "done":
            log.info("skip %s: %s exists", case.case_id, run.case_dir(case) / "result.json")
            report.skipped += 1
        elif state == "failed" and not cfg.retry_failed:
            log.info("skip %s: it failed before (retry_failed=false)", case.case_id)
            report.failed += 1
        else:
            if state is not None:
                why = "it failed before" if state == "failed" else "its configuration changed"
                log.info("re-running %s: %s", case.case_id, why)
            pending.append(case)
    log.info("%d cases here: %d to run, %d done before", len(cases), len(pending), report.skipped)
    if not pending:
        return report
    run.load()
    for i, case in enumerate(pending, 1):
        record = run.run_case(case)
        report.attempted += 1
        if record["status"] == "ok":
            report.ok += 1
        else:
            report.failed += 1
        edit = record.get("edit_seconds")
        log.info(
            "[%d/%d] %s: %s (train %.1f s, edit %s s)",
            i,
            len(pending),
            case.case_id,
            record["status"],
            record.get("train_seconds") or 0.0,
            "-" if edit is None else f"{edit:.1f}",
        )
    return report
