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


def test_the_reduced_gpu_check_runs_one_architecture(tmp_path):
    # SD 2.1's slot (tiny v-prediction stand-in): Imagic, null-text, Direct Inversion.
    _reduced_check(tmp_path, ["tiny_v"])


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
    assert judge(target, rows[1:2]) == (20.0, "missed")
    assert judge(target, [])[1] == "not measured"
