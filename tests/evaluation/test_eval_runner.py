"""The benchmark runner in process on the tiny model: rows, oracle fields, resume, failures,
training stages per case on one shared model, PIE-Bench masks, plots."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
import torch
from helpers import compose_config

from editing.editors.direct_inversion import DirectInversionEditor
from editing_app.evaluation.runner import run_suite
from editing_app.evaluation.summary import load_rows

FIXTURES = Path(__file__).parent / "fixtures"
TINY_CLIP = {
    "embed_dim": 16,
    "vision_cfg": {"image_size": 32, "layers": 1, "width": 32, "patch_size": 8, "head_width": 16},
    "text_cfg": {"context_length": 16, "vocab_size": 49408, "width": 32, "heads": 2, "layers": 1},
}
QUICK = ["base_model=tiny", "clip=none"]
DIRECT = ["method=direct_inversion", "method.num_inversion_steps=3", "method.num_inference_steps=3"]
ORACLE = {"success", "preserved"} | {
    f"oracle_{a}" for a in ("colour", "shape", "size", "position", "background", "count")
}


@pytest.fixture(scope="module")
def clip_dir(tmp_path_factory):
    from editing.models.clip import build_clip, save_clip

    torch.manual_seed(0)
    return str(save_clip(build_clip(TINY_CLIP), tmp_path_factory.mktemp("clip")))


def config(out: Path, *overrides: str):
    """The evaluate config; Direct Inversion with 3 steps unless another method is named."""
    method = [] if any(o.startswith("method=") for o in overrides) else DIRECT
    return compose_config("evaluate", [*QUICK, *method, f"output_dir={out}", *overrides])


def result(out: Path, case_id: str) -> dict:
    return json.loads((out / "cases" / case_id / "result.json").read_text())


@pytest.fixture
def editor_calls(monkeypatch):
    calls: list[str] = []
    original = DirectInversionEditor.__call__

    def counting(self, model, inputs):
        calls.append(inputs.target_prompt)
        return original(self, model, inputs)

    monkeypatch.setattr(DirectInversionEditor, "__call__", counting)
    return calls


def test_demo_suite_rows_carry_metrics_params_and_oracle_fields(tmp_path, clip_dir):
    from editing_app.commands.evaluate import evaluate

    out = tmp_path / "out"
    cfg = config(
        out,
        "suite.edit_types=[colour,remove]",
        "suite.n=1",
        "method.noise_lambda=[0.3,1.0]",
        f"clip.path={clip_dir}",
        "plot=true",
    )
    report = evaluate(cfg)
    assert (report.ok, report.failed, report.skipped) == (2, 0, 0)
    record = result(out, "colour-000")
    assert record["status"] == "ok" and record["worker"]["num_shards"] == 1
    rows = record["rows"]
    assert [r["param.noise_lambda"] for r in rows] == [0.3, 1.0]  # a sweep: one row per value
    for row in rows:
        assert set(row) >= ORACLE and isinstance(row["success"], bool)
        assert row["kind"] == "edit" and not row["is_reconstruction"]
        for key in ("clip_score", "clip_image_similarity", "lpips", "psnr", "ssim", "mse"):
            assert isinstance(row[key], float), key
        for key in ("background_psnr", "background_lpips", "background_mse", "background_ssim"):
            assert isinstance(row[key], float), key
        assert isinstance(row["edit_region_clip_score"], float) and row["target_psnr"] > 0
        assert row["one_minus_lpips"] == pytest.approx(1 - row["lpips"])
        assert row["edit_seconds"] > 0 and row["train_seconds"] == 0.0
        assert (out / "cases" / "colour-000" / row["image"]).is_file()
    assert rows[0]["image"] == "samples/000_lambda=0.3_w=3.png"
    for name in ("edit.png", "grid.png", "config.yaml", "input.png", "mask.png", "target.png"):
        assert (out / "cases" / "colour-000" / name).is_file(), name
    for name in ("results.csv", "results.jsonl", "summary.csv"):
        assert (out / name).is_file()
    assert len(load_rows(out)) == 4
    plots = out / "plots"
    assert (plots / "editability_fidelity_direct_inversion_noise_lambda.png").is_file()
    points = (plots / "editability_fidelity.csv").read_text().splitlines()
    assert points[0].startswith("method,variant,parameter,value") and len(points) == 3


def test_resume_skips_finished_cases_and_reruns_changed_ones(tmp_path, editor_calls):
    out = tmp_path / "out"
    args = ["suite.edit_types=[colour,shape]", "suite.n=1", "metrics.lpips_net=null"]
    report = run_suite(config(out, *args))
    assert (report.ok, len(editor_calls)) == (2, 2)
    first = (out / "cases" / "shape-000" / "edit.png").read_bytes()

    report = run_suite(config(out, *args))  # everything done: nothing runs
    assert (report.skipped, report.attempted, len(editor_calls)) == (2, 0, 2)

    (out / "cases" / "colour-000" / "result.json").unlink()  # interrupted before its result.json
    report = run_suite(config(out, *args))
    assert (report.skipped, report.ok, len(editor_calls)) == (1, 1, 3)
    assert (out / "cases" / "shape-000" / "edit.png").read_bytes() == first

    report = run_suite(config(out, *args, "method.noise_lambda=0.7"))  # another configuration
    assert (report.skipped, report.ok, len(editor_calls)) == (0, 2, 5)


def test_a_failing_case_is_recorded_and_the_run_goes_on(tmp_path, editor_calls):
    from editing_app.commands.evaluate import AllCasesFailed, evaluate

    out = tmp_path / "out"
    ted = [
        "suite=tedbench",
        f"suite.path={FIXTURES / 'tedbench'}",
        "suite.list_file=input_list_missing.json",
    ]
    report = evaluate(config(out, *ted))
    assert (report.ok, report.failed, report.all_failed) == (1, 1, False)
    failed = result(out, "001_missing")
    assert failed["status"] == "failed" and "image file not found" in failed["error"]
    assert "Traceback" in failed["traceback"]
    (row,) = failed["rows"]
    assert row["status"] == "failed" and row["error"] == failed["error"]
    assert result(out, "000_cat")["status"] == "ok"
    with open(out / "summary.csv") as f:
        summary = list(csv.DictReader(f))
    assert [r["n_failed"] for r in summary if r["edit_type"] == "all"] == ["1"]

    report = run_suite(config(out, *ted))  # the failed case is retried, the good one skipped
    assert (report.skipped, report.attempted, report.failed, len(editor_calls)) == (1, 1, 1, 1)

    missing = tmp_path / "only_missing.json"
    missing.write_text(json.dumps([["nowhere.png", "a cat"]]))
    with pytest.raises(AllCasesFailed, match="every case failed"):
        evaluate(config(tmp_path / "bad", *ted[:2], f"suite.list_file={missing}"))


def test_null_text_stage_per_case_and_reconstruction_rows(tmp_path):
    out = tmp_path / "out"
    cfg = config(
        out,
        "method=null_text_p2p",
        "method.num_inference_steps=3",
        "suite.edit_types=[shape]",
        "suite.n=2",
        'train_overrides=["stage.num_inference_steps=3","stage.num_inner_steps=2"]',
        "trainer.enable_model_summary=false",
    )
    report = run_suite(cfg)
    assert report.ok == 2
    for case_id in ("shape-000", "shape-001"):
        record = result(out, case_id)
        assert (out / "cases" / case_id / "checkpoints" / "null_text.safetensors").is_file()
        edit, recon = record["rows"]
        assert record["train_seconds"] > 0 and edit["train_seconds"] == record["train_seconds"]
        assert edit["kind"] == "edit" and edit["reconstruction_psnr"] is None
        assert recon["kind"] == "reconstruction" and recon["is_reconstruction"]
        assert recon["reconstruction_psnr"] == recon["psnr"] and recon["success"] is None
        assert edit["train.num_inner_steps"] == 2 and edit["param.inversion"] == "null_text"
    from editing_app.evaluation.plots import make_plots

    written = make_plots(out)
    assert out / "plots" / "reconstruction_psnr.png" in written
    with open(out / "plots" / "reconstruction_psnr.csv") as f:
        (point,) = list(csv.DictReader(f))
    assert (point["inversion"], point["n"]) == ("null_text", "2")


def test_imagic_trains_per_case_on_a_shared_model_and_can_drop_artifacts(tmp_path):
    out = tmp_path / "out"
    args = [
        "method=imagic",
        "method.num_inference_steps=2",
        "method.eta=[0.0,1.0]",
        "method.seeds=[0]",
        "suite.edit_types=[colour]",
        "suite.n=2",
        # a large fine-tune lr: were the shared base UNet trained in place, case 2 would differ
        'train_overrides=["stage.embed.num_steps=2","stage.finetune.num_steps=2",'
        '"stage.finetune.lr=0.01"]',
        "keep_artifacts=false",
        "variant=auto",
    ]
    report = run_suite(config(out, *args))
    assert report.ok == 2
    run = out / "embed.num_steps=2,finetune.num_steps=2,finetune.lr=0.01"
    for case_id in ("colour-000", "colour-001"):
        record = result(run, case_id)
        assert [r["param.eta"] for r in record["rows"]] == [0.0, 1.0]
        assert record["rows"][0]["train.embed.num_steps"] == 2
        assert not (run / "cases" / case_id / "checkpoints").exists()
    # The second case alone, in a fresh process state: the same numbers, so the first case's
    # fine-tune left the shared base model untouched (and shards do not change results).
    alone = tmp_path / "alone"
    report = run_suite(config(alone, *args, "suite.num_shards=2", "suite.shard=1"))
    assert report.ok == 1
    shared, fresh = (
        result(run, "colour-001")["rows"],
        result(alone / run.name, "colour-001")["rows"],
    )
    assert [r["psnr"] for r in shared] == [r["psnr"] for r in fresh]


def test_piebench_masks_and_case_blend_words(tmp_path):
    out = tmp_path / "out"
    cfg = config(
        out,
        "suite=piebench",
        f"suite.path={FIXTURES / 'piebench'}",
        "method=null_text_p2p",
        "method.inversion=ddim",
        "method.num_inference_steps=2",
        "case_blend_words=true",
        "method.blend_resolution=1",  # the tiny UNet's cross-attention maps are 8x8
        "metrics.background_normalize=image",
    )
    report = run_suite(cfg)
    assert report.ok == 2, [result(out, c)["error"] for c in ("000000000000", "111000000000")]
    rows = result(out, "000000000000")["rows"]
    assert rows[0]["edit_type"] == "change_attribute_color"
    assert rows[0]["background_psnr"] is not None and rows[0]["background_lpips"] is not None
    assert "success" not in rows[0]  # no oracle outside the demo world
    assert (out / "cases" / "000000000000" / "mask.png").is_file()


def test_train_overrides_must_be_stage_settings(tmp_path):
    from editing.errors import UserInputError

    with pytest.raises(UserInputError, match="must set a stage setting"):
        run_suite(config(tmp_path, "method=imagic", 'train_overrides=["trainer.max_steps=2"]'))
    with pytest.raises(UserInputError, match="train_overrides"):
        run_suite(config(tmp_path, "method=imagic", 'train_overrides=["stage.no_such_key=2"]'))
    assert not (tmp_path / "cases").exists()
