"""The wheel, installed into a fresh virtual environment outside the checkout, runs the demo's Direct
Inversion edit with its packaged configs and assets, and installs no module named like a
well-known package (`evaluate`, `train`, `demo`, `benchmarks`).

The default test gives the fresh environment this environment's dependencies as a plain path
(its own .pth files, the checkout's editable finder among them, are not read from there) and
installs the wheel with `--no-deps`; the slow one installs the wheel with its dependencies
resolved by pip from the package index, which checks the version floors of pyproject.toml.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import sysconfig
import venv
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
NOT_INSTALLED = ("train", "edit", "evaluate", "demo", "app", "benchmarks")


def _run(args: list[str], cwd: Path, **env: str) -> subprocess.CompletedProcess:
    environment = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    environment.update({"HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1", **env})
    result = subprocess.run(args, cwd=cwd, env=environment, capture_output=True, text=True)
    assert result.returncode == 0, (
        f"{args[:3]} failed:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
    )
    return result


def _source_copy(root: Path) -> Path:
    """The checkout's tracked files (and its untracked, unignored ones) copied to `root`: the
    build's `build/` and `*.egg-info` then land there, not in the checkout, and no stale
    `build/lib` of an earlier build can slip into the wheel."""
    listed = (
        subprocess.run(
            ["git", "ls-files", "--cached", "--others", "--exclude-standard", "-z"],
            cwd=REPO,
            capture_output=True,
            check=True,
        )
        .stdout.decode()
        .split("\0")
    )
    for name in filter(None, listed):
        source = REPO / name
        if source.is_file():
            (root / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, root / name)
    return root


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("wheel")
    source = _source_copy(tmp_path_factory.mktemp("source"))
    _run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "-q",
            "--no-deps",
            "--no-build-isolation",
            "-w",
            str(out),
            str(source),
        ],
        cwd=out,
    )
    (path,) = out.glob("diffusion_image_editing-*.whl")
    return path


def _fresh_venv(root: Path) -> Path:
    venv.EnvBuilder(with_pip=False, clear=True).create(root)
    return root / "bin" / "python"


def _site_packages(python: Path) -> Path:
    out = subprocess.run(
        [str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        capture_output=True,
        text=True,
        check=True,
    )
    return Path(out.stdout.strip())


def _direct_inversion_edit(python: Path, work: Path) -> Path:
    """The demo's Direct Inversion edit (few steps) run by the installed console script, from a
    folder outside the checkout, on the packaged example image."""
    example = json.loads(
        _run(
            [
                str(python),
                "-c",
                "import json; from demo_world.examples import EXAMPLES_DIR as d;"
                "e = json.loads((d / 'examples.json').read_text())['red_circle'];"
                "print(json.dumps({'image': str(d / e['image']), 'source': e['source_prompt'],"
                " 'target': e['target_prompts'][0]}))",
            ],
            cwd=work,
        ).stdout
    )
    assert not Path(example["image"]).is_relative_to(REPO), example["image"]
    out = work / "edit"
    _run(
        [
            str(python.parent / "diffusion-edit"),
            "method=direct_inversion",
            f"image={example['image']}",
            f"source_prompt={example['source']}",
            f"target_prompt={example['target']}",
            "method.invert_with_source=true",
            "method.num_inversion_steps=4",
            "method.num_inference_steps=4",
            f"output_dir={out}",
        ],
        cwd=work,
    )
    return out


def _check_installed(python: Path, work: Path) -> None:
    site = _site_packages(python)
    where = _run(
        [
            str(python),
            "-c",
            "import editing, editing_app.configs as c, demo_world.demo_model as d;"
            "print(editing.__file__); print(c.CONFIG_DIR); print(d.DEMO_MODEL_DIR)",
        ],
        cwd=work,
    ).stdout.split()
    assert all(Path(p).is_relative_to(site) for p in where), where
    assert (Path(where[1]) / "edit.yaml").is_file()
    assert (Path(where[2]) / "model_index.json").is_file()
    for name in NOT_INSTALLED:
        spec = _run(
            [
                str(python),
                "-c",
                f"import importlib.util as u; s = u.find_spec({name!r});"
                "print(s.origin if s else None)",
            ],
            cwd=work,
        ).stdout.strip()
        assert spec == "None" or not Path(spec).is_relative_to(site), (name, spec)
        # a same-named module of the dependencies (Hugging Face's `evaluate`) is fine; this
        # project's scripts at the checkout's root are not
        assert spec == "None" or Path(spec).parent.resolve() not in (REPO, REPO / "benchmarks")
    for script in (
        "diffusion-edit-train",
        "diffusion-edit",
        "diffusion-edit-evaluate",
        "diffusion-edit-demo",
        "diffusion-edit-export-unet",
        "diffusion-edit-app",
    ):
        assert (python.parent / script).is_file(), script


def test_wheel_runs_direct_inversion_outside_the_checkout(wheel, tmp_path):
    python = _fresh_venv(tmp_path / "venv")
    # Dependencies: this environment's packages as a plain path entry (no .pth processing there,
    # so the checkout's editable install is not visible), then the wheel alone.
    deps = Path(sysconfig.get_paths()["purelib"])
    (_site_packages(python) / "dependencies.pth").write_text(f"{deps}\n")
    _run(
        [
            sys.executable,
            "-m",
            "pip",
            "--python",
            str(python),
            "install",
            "-q",
            "--no-deps",
            str(wheel),
        ],
        cwd=tmp_path,
    )
    work = tmp_path / "work"
    work.mkdir()
    _check_installed(python, work)
    out = _direct_inversion_edit(python, work)
    assert {p.name for p in out.iterdir()} >= {"edit.png", "grid.png", "config.yaml"}


@pytest.mark.slow
def test_wheel_installs_with_its_dependencies_from_the_index(wheel, tmp_path):
    venv.EnvBuilder(with_pip=True, clear=True).create(tmp_path / "venv")
    python = tmp_path / "venv" / "bin" / "python"
    # torch first, the build on local disk (as the Makefile does), then the wheel and its ranges.
    _run(
        [str(python), "-m", "pip", "install", "-q", "torch==2.14.1", "torchvision==0.29.1"],
        cwd=tmp_path,
    )
    _run([str(python), "-m", "pip", "install", "-q", str(wheel)], cwd=tmp_path)
    work = tmp_path / "work"
    work.mkdir()
    _check_installed(python, work)
    out = _direct_inversion_edit(python, work)
    assert (out / "edit.png").is_file()
