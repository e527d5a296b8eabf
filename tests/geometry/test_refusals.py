"""Bad inputs of this geometry: one clear line, nothing written."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from conftest import SIZES, photo
from PIL import Image

from editing.errors import UserInputError
from editing.io.geometry import MAX_ASPECT, SizeRule
from editing_app import api

REPO = Path(__file__).resolve().parents[2]


def test_an_aspect_beyond_four_to_one_is_refused(tiny_model, tmp_path):
    path = tmp_path / "strip.png"
    Image.new("RGB", (90, 20), (10, 20, 30)).save(path)
    with pytest.raises(UserInputError, match=r"aspect ratio of 4.50:1; at most 4:1"):
        api.edit(tiny_model, "direct_inversion", path, target_prompt="x", num_inference_steps=1)
    assert MAX_ASPECT == 4.0
    SizeRule(32, 8).plan((80, 20))  # exactly 4:1 is allowed


def test_a_side_under_the_model_multiple_is_refused():
    with pytest.raises(UserInputError, match="under the 32 px the model needs"):
        SizeRule(32, 32).plan((80, 20))


def test_a_mask_of_another_aspect_is_refused_and_a_scaled_one_accepted(tiny_model, tmp_path):
    image, mask = photo(tmp_path, SIZES["4:3"])
    square = tmp_path / "square_mask.png"
    Image.new("L", (30, 30), 255).save(square)
    with pytest.raises(UserInputError, match="mask .* is 30x30 but image .* is 40x30, another"):
        api.edit(tiny_model, "blended_latent", image, mask=square, target_prompt="x")
    half = tmp_path / "half_mask.png"
    Image.open(mask).resize((20, 15), Image.Resampling.NEAREST).save(half)
    out = api.edit(
        tiny_model,
        "blended_latent",
        image,
        mask=half,
        target_prompt="x",
        num_inference_steps=1,
        num_candidates=1,
    )
    assert out.full_size.size == (40, 30)


def test_an_artifact_of_another_working_size_is_refused(tiny_model, tmp_path):
    image, _ = photo(tmp_path, SIZES["4:3"])
    inversion = api.train(
        tiny_model, "null_text", image, source_prompt="a", num_inference_steps=1, num_inner_steps=1
    )
    assert inversion["null_text"].metadata["working_size"] == "24x40"
    with pytest.raises(
        UserInputError, match=r"working size \(H x W\): artifact has '24x40', this run has '32x32'"
    ):
        api.edit(
            tiny_model,
            "null_text_p2p",
            image,
            target_prompt="b",
            artifact=inversion,
            image_fit="center_crop",
            num_inference_steps=1,
            blend_words=None,
        )


def test_edit_py_refuses_in_one_line_and_writes_nothing(tmp_path):
    strip = tmp_path / "strip.png"
    Image.new("RGB", (100, 20)).save(strip)
    out = tmp_path / "out"
    env = {"HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1", "PATH": "/usr/bin:/bin"}
    args = ["method=direct_inversion", "base_model=tiny", f"image={strip}", f"output_dir={out}"]
    r = subprocess.run(
        [sys.executable, "edit.py", *args, "target_prompt=x"],
        cwd=REPO,
        capture_output=True,
        text=True,
        env=env,
        timeout=600,
    )
    assert r.returncode == 2
    errors = [line for line in r.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "at most 4:1" in errors[0]
    assert not out.exists() or not any(p.name.startswith("edit") for p in out.iterdir())


def test_image_fit_is_checked_before_anything_loads(tmp_path):
    env = {"HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1", "PATH": "/usr/bin:/bin"}
    r = subprocess.run(
        [
            sys.executable,
            "edit.py",
            "method=direct_inversion",
            "base_model=tiny",
            "image_fit=stretch",
            f"output_dir={tmp_path / 'o'}",
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
        env=env,
        timeout=600,
    )
    assert r.returncode == 2 and "image_fit" in r.stderr


def test_the_working_size_of_each_fit():
    rule = SizeRule(512, 64)
    assert rule.plan((1024, 768)).size == (448, 576)
    assert rule.plan((768, 1024)).size == (576, 448)
    assert SizeRule(512, 64, "center_crop").plan((1024, 768)).size == (512, 512)
    assert SizeRule(512, 64, "pad").plan((1024, 768)).box == (0, 64, 512, 448)


def test_restoring_a_centre_crop_and_a_pad():
    rng = np.random.default_rng(0)
    source = Image.fromarray(rng.integers(0, 255, (30, 40, 3), dtype=np.uint8))
    crop = SizeRule(16, 1, "center_crop").plan(source.size)
    work = crop.fit_image(source, Image.Resampling.BICUBIC)
    back = np.asarray(crop.restore(work, source))
    left, _, right, _ = crop.box
    assert back.shape == (30, 40, 3)
    assert np.array_equal(back[:, :left], np.asarray(source)[:, :left])
    assert np.array_equal(back[:, right:], np.asarray(source)[:, right:])
    pad = SizeRule(16, 1, "pad").plan(source.size)
    work = pad.fit_image(source, Image.Resampling.BICUBIC)
    assert work.size == (16, 16) and pad.box == (0, 2, 16, 14)
    assert pad.restore(work).size == (40, 30)
