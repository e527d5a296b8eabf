"""The prepared GPU check in its reduced mode (tiny stand-ins on the CPU): every architecture's
scripts run and land in one Markdown table with the machine and the targets."""

from __future__ import annotations

import pytest


def _reduced_check(tmp_path, only: list[str]):
    from benchmarks import gpu_check

    out = tmp_path / "check.md"
    argv = ["--reduced", "--device", "cpu", "--markdown", str(out)]
    jobs = gpu_check.main([*argv, *(["--only", *only] if only else [])])
    chosen = [a for a in gpu_check.ARCHITECTURES if not only or a.reduced in only]
    expected = [(a.label, s) for a in chosen for s in a.scripts]
    assert [(j.architecture.label, j.run.benchmark) for j in jobs] == expected
    failed = [j.run.benchmark for j in jobs if j.run.returncode != 0 or not j.run.rows]
    assert failed == []
    text = out.read_text()
    assert "Machine: CPU:" in text and "reduced mode" in text
    for arch in chosen:
        assert f"| {arch.label} |" in text
    for target in gpu_check.TARGETS:
        assert f"| {target.label} | {target.limit:g} |" in text
    return jobs


def test_the_reduced_gpu_check_runs_one_architecture(tmp_path):
    # SD 2.1's slot (tiny v-prediction stand-in): Imagic, null-text, Direct Inversion.
    _reduced_check(tmp_path, ["tiny_v"])


def test_the_reduced_gpu_check_runs_sdxl(tmp_path):
    # SDXL's slot (tiny_sdxl): every latent method (Blended: no pixel model beside it), memory.
    jobs = _reduced_check(tmp_path, ["tiny_sdxl"])
    rows = {j.run.benchmark: j.run.rows for j in jobs}
    assert list(rows) == ["imagic", "null_text", "direct_inversion", "blended", "memory"]
    assert all(r.setting.split()[0] == "tiny_sdxl" for rs in rows.values() for r in rs)
    assert {r.benchmark for r in rows["blended"]} == {"blended latent", "blended latent ranked"}
    memory = {(r.benchmark, r.setting) for r in rows["memory"]}
    switches = ("none", "checkpointing", "half weights")
    assert memory == {("memory null-text", f"tiny_sdxl {s}") for s in switches}
    assert (
        "| SDXL 1024 px | direct inversion edit | tiny_sdxl cpu 32-true 2+2 |"
        in (tmp_path / "check.md").read_text()
    )


def test_memory_stages_follow_the_methods_of_an_architecture():
    from benchmarks import gpu_check, memory

    imagic = ["imagic embed", "imagic finetune-full", "imagic finetune-lora"]
    assert gpu_check.memory_stages(gpu_check.LATENT_SCRIPTS, False) == [*imagic, "null-text"]
    assert gpu_check.memory_stages(gpu_check.LATENT_SCRIPTS, True) == ["null-text"]
    assert gpu_check.memory_stages(gpu_check.SDXL_SCRIPTS, False) == [*imagic, "null-text"]
    without_null_text = tuple(s for s in gpu_check.SDXL_SCRIPTS if s != "null_text")
    assert gpu_check.memory_stages(without_null_text, False) == imagic
    assert gpu_check.memory_stages(without_null_text, True) == ["imagic embed"]
    stages = [s for names in gpu_check.MEMORY_STAGES.values() for s in names]
    assert sorted(stages) == sorted(memory.STAGES)
    argv = gpu_check.script_argv("memory", "sdxl", "cuda", False, gpu_check.SDXL_SCRIPTS)
    assert argv == [
        "--arch",
        "sdxl",
        "--device",
        "cuda",
        "--stages",
        *imagic,
        "null-text",
        "--steps",
        "2",
    ]
    sdxl = next(a for a in gpu_check.ARCHITECTURES if a.full == "sdxl")
    assert (sdxl.label, sdxl.reduced, sdxl.scripts) == (
        "SDXL 1024 px",
        "tiny_sdxl",
        gpu_check.SDXL_SCRIPTS,
    )


@pytest.mark.slow
def test_the_reduced_gpu_check_runs_every_architecture(tmp_path):
    from benchmarks import gpu_check

    out = tmp_path / "check.md"
    jobs = gpu_check.main(["--reduced", "--device", "cpu", "--markdown", str(out)])
    expected = [(a.label, s) for a in gpu_check.ARCHITECTURES for s in a.scripts]
    assert [(j.architecture.label, j.run.benchmark) for j in jobs] == expected
    failed = [j.run.benchmark for j in jobs if j.run.returncode != 0 or not j.run.rows]
    assert failed == []
    text = out.read_text()
    assert "Machine: CPU:" in text and "reduced mode" in text
    for arch in gpu_check.ARCHITECTURES:
        assert f"| {arch.label} |" in text
    for target in gpu_check.TARGETS:
        assert f"| {target.label} | {target.limit:g} |" in text


def test_the_full_check_runs_bf16_at_full_size_and_needs_a_gpu():
    from benchmarks import gpu_check

    argv = gpu_check.script_argv("imagic", "sd15", "cuda", reduced=False)
    assert argv[:4] == ["--arch", "sd15", "--device", "cuda"] and "bf16-mixed" in argv
    with pytest.raises(SystemExit):
        gpu_check.main(["--device", "cpu"])


def test_targets_are_judged_on_the_best_matching_row():
    from benchmarks.common import Row
    from benchmarks.gpu_check import Target, judge

    target = Target("t", "null-text inversion", "sd15", "seconds", 15)
    rows = [
        Row("null-text inversion", "sd15 cuda bf16-mixed", 12.0, "s"),
        Row("null-text inversion", "sd15 cuda 32-true", 20.0, "s"),
        Row("null-text inversion", "tiny cpu", 1.0, "s"),
    ]
    assert judge(target, rows) == (12.0, "met")
    # the setting is matched as a word: sdxl's targets do not judge its tiny stand-in
    sdxl = Target("t", "blended latent", "sdxl", "peak_memory_mb", 24 * 1024)
    tiny = [Row("blended latent", "tiny_sdxl cpu 32-true", 1.0, "s", 900.0)]
    assert judge(sdxl, tiny)[1] == "not measured"
    full = [*tiny, Row("blended latent", "sdxl cuda bf16-mixed", 1.0, "s", 30000.0)]
    assert judge(sdxl, full) == (30000.0, "missed")
    assert judge(target, rows[1:2]) == (20.0, "missed")
    assert judge(target, [])[1] == "not measured"


def test_the_sd15_slot_measures_the_unet_speed_switches():
    from benchmarks import gpu_check, unet_switches

    sd15 = next(a for a in gpu_check.ARCHITECTURES if a.full == "sd15")
    assert "unet_switches" in sd15.scripts
    full = gpu_check.script_argv("unet_switches", "sd15", "cuda", False, sd15.scripts)
    assert full[full.index("--precision") + 1] == "bf16-mixed"
    reduced = gpu_check.script_argv("unet_switches", "tiny", "cpu", True, sd15.scripts)
    rows = unet_switches.main(reduced)
    kinds = [(r.benchmark, r.setting.split()[3]) for r in rows]
    assert kinds == [
        ("unet sdpa", "sampling"),
        ("unet channels_last", "sampling"),
        ("unet sdpa", "training"),
        ("unet channels_last", "training"),
    ]
    assert all(r.seconds > 0 for r in rows)
