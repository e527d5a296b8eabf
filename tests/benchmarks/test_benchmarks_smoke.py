"""Each benchmark's main() runs on the tiny models with minimal counts and returns rows of finite
numbers; the report's table, steps/s and Markdown are built from such rows."""

from __future__ import annotations

import math

import pytest
import torch

from benchmarks.common import Row


def _check(rows: list[Row], names: set[str]) -> None:
    assert rows and names <= {r.benchmark for r in rows}
    for r in rows:
        assert math.isfinite(r.seconds) and r.seconds > 0, r
        for key, value in r.extra.items():
            if isinstance(value, float):
                assert math.isfinite(value), (r.benchmark, key, value)


def test_null_text_benchmark(tmp_path):
    from benchmarks import null_text

    argv = ["--quick", "--device", "cpu", "--steps", "2", "--inner", "2", "--json"]
    rows = null_text.main([*argv, str(tmp_path / "rows.json")])
    _check(
        rows,
        {
            "null-text inversion",
            "null-text UNet calls alone",
            "null-text stage (Lightning)",
            "null-text P2P edit",
        },
    )
    full = rows[0]
    assert full.extra["inner_used"] == 4 and "overhead_pct" in full.extra
    assert (tmp_path / "rows.json").is_file()


def test_direct_inversion_benchmark():
    from benchmarks import direct_inversion

    argv = ["--quick", "--device", "cpu", "--inversion-steps", "2", "--inference-steps", "2"]
    rows = direct_inversion.main(argv)
    _check(rows, {"direct inversion edit", "direct inversion sweep"})
    sweep = next(r for r in rows if r.benchmark == "direct inversion sweep")
    assert sweep.extra["k_singles_s"] > 0


def test_blended_benchmark():
    from benchmarks import blended

    argv = ["--quick", "--device", "cpu", "--latent-steps", "2", "--pixel-steps", "3"]
    rows = blended.main([*argv, "--skip", "1", "--augmentations", "2"])
    _check(rows, {"blended latent", "blended latent ranked", "blended pixel ranked"})
    pixel = next(r for r in rows if r.benchmark == "blended pixel ranked")
    assert pixel.extra["steps"] == 2 and pixel.extra["per_candidate_s"] > 0


@pytest.mark.slow
def test_imagic_benchmark():
    from benchmarks import imagic

    _check(imagic.main(["--device", "cpu", "--steps", "4"]), {"imagic embed"})


def test_report_table_steps_per_second_and_markdown():
    from benchmarks.report import Run, benchmark_argv, markdown, steps_per_second, table_lines

    rows = [
        Row("a", "tiny cpu", 0.5, "s/step", 10.0, {}),
        Row("b", "tiny cpu", 2.0, "s", float("nan"), {"steps": 8, "overhead_pct": 3.0}),
        Row("c", "tiny cpu", 4.0, "s", 1.0, {"steps": "1000+1500"}),
        Row("d", "tiny cpu", 1.0, "s", 1.0, {}),
    ]
    assert steps_per_second(rows[0]) == 2.0 and steps_per_second(rows[1]) == 4.0
    assert steps_per_second(rows[2]) == 625.0 and math.isnan(steps_per_second(rows[3]))
    ok = Run("null_text", "cpu", ["--arch", "tiny"], 0, "m", 1.0, rows)
    failed = Run("blended", "cpu", ["--arch", "tiny"], 1)
    lines = table_lines([ok, failed])
    assert len(lines) == 1 + 4 + 1 and "FAILED" in lines[-1]
    text = markdown([ok, failed], {"command": "c", "date": "d", "git": "g", "machine": "M"})
    assert "Machine: M." in text and "`python -m benchmarks.null_text --arch tiny`" in text
    assert "| b | tiny cpu | 2 | s | 4 | - | steps=8, overhead_pct=3 |" in text
    assert benchmark_argv("blended", "cuda", False) == ["--arch", "sd15", "--device", "cuda"]
    assert "--quick" in benchmark_argv("null_text", "cpu", True)


@pytest.mark.slow
def test_report_runs_every_benchmark_quick(tmp_path):
    from benchmarks import report

    out = tmp_path / "report.md"
    rows = report.main(["--device", "cpu", "--quick", "--markdown", str(out)])
    assert {r.benchmark for r in rows} >= {"imagic embed", "null-text inversion", "blended latent"}
    assert "python -m benchmarks.blended --arch tiny --device cpu --quick" in out.read_text()


def test_memory_benchmark_reports_each_switch(tmp_path):
    from benchmarks import memory

    rows = memory.main(
        ["--device", "cpu", "--arch", "tiny", "--steps", "1", "--stages", "null-text"]
    )
    _check(rows, {"memory null-text"})
    assert {r.setting for r in rows} == {"tiny none", "tiny checkpointing", "tiny half weights"}
    assert all(r.unit == "MB" and r.extra["peak"] == "rss" for r in rows)


def test_a_memory_run_out_of_memory_is_a_row_without_a_figure(monkeypatch):
    import subprocess

    from benchmarks import memory

    def out_of_memory(cmd, **kwargs):
        stderr = "Traceback ...\ntorch.OutOfMemoryError: CUDA out of memory. Tried to allocate"
        return subprocess.CompletedProcess(cmd, 1, stdout="", stderr=stderr)

    monkeypatch.setattr(memory.subprocess, "run", out_of_memory)
    argv = ["--device", "cpu", "--arch", "tiny", "--steps", "1", "--stages", "imagic embed"]
    rows = memory.main(argv)
    assert [r.setting for r in rows] == ["tiny none", "tiny checkpointing", "tiny half weights"]
    assert all(math.isnan(r.peak_memory_mb) and r.extra["out_of_memory"] == "yes" for r in rows)

    def crash(cmd, **kwargs):
        return subprocess.CompletedProcess(cmd, 1, stdout="", stderr="ValueError: broken")

    monkeypatch.setattr(memory.subprocess, "run", crash)
    with pytest.raises(RuntimeError, match="ValueError: broken"):
        memory.main(argv)


def test_imagic_benchmark_stages_on_sdxl_run_their_named_modes(tmp_path):
    # finetune-full is the full fine-tune on SDXL too, where stage.finetune_mode=auto is LoRA;
    # the bare loop trains the embedding stage's e_opt and its pooled part.
    from benchmarks import imagic

    def run(stage: str, steps: int = 3):
        return imagic.lightning_run("tiny_sdxl", "cpu", "32-true", stage, steps, tmp_path, None)[1]

    embed = run("embed")
    before = embed.e_opt_pooled.detach().clone(), embed.e_opt.detach().clone()
    assert imagic.bare_run(embed, "cpu", "32-true", 4) > 0
    assert not torch.equal(before[0], embed.e_opt_pooled) and not torch.equal(
        before[1], embed.e_opt
    )
    full, lora = run("finetune-full"), run("finetune-lora")
    assert (full.finetune_mode, lora.finetune_mode) == ("full", "lora")
    assert all(p.requires_grad for p in full.model.unet.parameters())
    trained = {n for n, p in lora.model.unet.named_parameters() if p.requires_grad}
    assert trained and all("lora" in n for n in trained) and lora.lora["rank"] == 8


@pytest.mark.parametrize("arch", ["tiny", "tiny_sdxl"])
def test_null_text_unet_calls_alone_are_the_inversions_calls(arch):
    # steps pivot forwards, then per step: 1 conditional + inner[i] null forwards (with a
    # backward) + 1 advance; on SDXL each call carries the pooled embedding and time ids.
    from benchmarks.architectures import model_for
    from benchmarks.null_text import random_image, run_unet_calls

    model = model_for(arch)
    z0 = model.encode_image(random_image(model.resolution).pixels)
    calls = []

    def record(module, args, kwargs):  # (a gradient to the null embedding, added inputs)
        trained = torch.is_grad_enabled() and kwargs["encoder_hidden_states"].requires_grad
        calls.append((trained, kwargs.get("added_cond_kwargs")))

    handle = model.unet.register_forward_pre_hook(record, with_kwargs=True)
    try:
        run_unet_calls(model, z0, 2, [2, 1], "cpu", "32-true")
    finally:
        handle.remove()
    assert len(calls) == 2 + (1 + 2 + 1) + (1 + 1 + 1)
    assert [grad for grad, _ in calls] == [False] * 3 + [True] * 2 + [False] * 2 + [True] + [False]
    added = [a for _, a in calls]
    if arch == "tiny_sdxl":
        assert all(tuple(a["text_embeds"].shape) == (1, model.pooled_dim) for a in added)
        assert all(a["time_ids"].tolist() == [[32.0, 32.0, 0.0, 0.0, 32.0, 32.0]] for a in added)
    else:
        assert added == [None] * len(calls)


def test_loop_overhead_benchmark_times_both_loops():
    from benchmarks import loop_overhead

    (row,) = loop_overhead.main(["--steps", "20", "--repeat", "1"])
    assert row.benchmark == "loop overhead"
    assert row.seconds > 0 and row.extra["bare_s_per_step"] > 0
    # Like for like: the Lightning fit took exactly the bare loop's steps.
    assert row.extra["same_result"] is True
