"""Bad inputs: one clear line, a non-zero exit, nothing partial written."""

from __future__ import annotations

import numpy as np
import pytest
from helpers import compose_config
from PIL import Image
from test_train_edit_cli import run

from editing.errors import UserInputError

TRAIN = ["base_model=tiny", "trainer=cpu", "callbacks=none", "logger=none", "trainer.max_steps=1"]


def _train(tmp_path, *overrides):
    from editing_app.commands.train import train

    out = tmp_path / "out"
    with pytest.raises(UserInputError) as err:
        train(compose_config("train", [*TRAIN, f"output_dir={out}", *overrides]))
    assert not out.exists(), "a refused run must not write anything"
    return str(err.value)


def test_missing_and_corrupt_images(tmp_path):
    assert "image file not found" in _train(
        tmp_path, "stage=imagic_embed", f"image={tmp_path / 'nope.png'}", "target_prompt=a cat"
    )
    bad = tmp_path / "bad.jpg"
    bad.write_bytes(b"\xff\xd8\xff\xe0 definitely not a jpeg")
    assert "cannot read image" in _train(
        tmp_path, "stage=imagic_embed", f"image={bad}", "target_prompt=a cat"
    )


def test_tiny_and_huge_images(tmp_path, monkeypatch):
    Image.new("RGB", (5, 5)).save(tmp_path / "tiny.png")
    assert "only 5x5 pixels" in _train(
        tmp_path, "stage=imagic_embed", f"image={tmp_path / 'tiny.png'}", "target_prompt=a cat"
    )
    import editing.io.images

    monkeypatch.setattr(editing.io.images, "MAX_PIXELS", 64 * 64)
    Image.new("RGB", (100, 100)).save(tmp_path / "huge.png")
    assert "downscale it" in _train(
        tmp_path, "stage=imagic_embed", f"image={tmp_path / 'huge.png'}", "target_prompt=a cat"
    )


def test_prompts(tmp_path, image_path):
    assert "target_prompt is empty" in _train(
        tmp_path, "stage=imagic_embed", f"image={image_path}", "target_prompt="
    )
    long = " ".join(["cat"] * 100)
    assert "tokens long" in _train(
        tmp_path, "stage=imagic_embed", f"image={image_path}", f"target_prompt={long}"
    )


def test_finetune_without_embedding(tmp_path, image_path):
    assert "no imagic_embed artifact" in _train(
        tmp_path, "stage=imagic_finetune", f"image={image_path}", "target_prompt=a cat"
    )


@pytest.mark.parametrize("mode", ["L", "P", "RGBA", "I;16"])
def test_unusual_image_modes_train(tmp_path, mode):
    from editing_app.commands.train import train

    rgb = (np.arange(24 * 24 * 3).reshape(24, 24, 3) % 251).astype(np.uint8)
    img = Image.fromarray(rgb)
    img = (
        Image.fromarray(rgb[..., 0].astype(np.uint16) * 257)
        if mode == "I;16"
        else img.convert(mode)
    )
    path = tmp_path / f"in_{mode.replace(';', '')}.png"
    img.save(path)
    paths = train(
        compose_config(
            "train",
            [
                *TRAIN,
                "stage=imagic_embed",
                f"image={path}",
                "target_prompt=a cat",
                f"output_dir={tmp_path / 'o'}",
            ],
        )
    )
    assert paths[0].is_file()


def test_artifact_of_another_base_model_or_resolution(tmp_path, image_path):
    from editing_app.commands.edit import edit
    from editing_app.commands.train import train

    ckpt = tmp_path / "ckpt"
    train(
        compose_config(
            "train",
            [
                *TRAIN,
                "stage=imagic",
                f"image={image_path}",
                "target_prompt=a cat",
                f"output_dir={ckpt}",
            ],
        )
    )
    for override, expected in (
        ("base_model.seed=7", "base model"),
        ("base_model.resolution=64", "resolution"),
    ):
        out = tmp_path / "edit"
        with pytest.raises(UserInputError, match=expected):
            edit(
                compose_config(
                    "edit",
                    [
                        "base_model=tiny",
                        override,
                        "method=imagic",
                        f"checkpoint_dir={ckpt}",
                        f"output_dir={out}",
                    ],
                )
            )
        assert not out.exists()


def test_cli_errors_are_one_line_with_status_2(tmp_path, image_path):
    cases = [
        (
            "train.py",
            ["stage=nope", f"output_dir={tmp_path}/a"],
            "unknown stage 'nope': choose one of",
        ),
        ("edit.py", ["method=nope", f"output_dir={tmp_path}/b"], "unknown method 'nope'"),
        (
            "edit.py",
            ["method=imagic", "base_model=tiny", "method.eta=abc", f"output_dir={tmp_path}/c"],
            "method.eta must be a number",
        ),
        (
            "train.py",
            [
                "stage=imagic_embed",
                "base_model=tiny",
                f"image={tmp_path}/missing.png",
                "target_prompt=x",
                f"output_dir={tmp_path}/d",
            ],
            "image file not found",
        ),
        (
            "train.py",
            [
                "stage=imagic_embed",
                "base_model=tiny",
                f"image={image_path}",
                "target_prompt=x",
                "stage.nonsense=1",
                f"output_dir={tmp_path}/e",
            ],
            "unknown setting stage.nonsense",
        ),
    ]
    for script, args, message in cases:
        r = run(script, *args)
        lines = [line for line in r.stderr.splitlines() if line.strip()]
        assert r.returncode == 2, (script, args, r.stderr[-2000:])
        assert "Traceback" not in r.stderr, r.stderr[-2000:]
        assert lines[-1].startswith("error: ") and message in lines[-1], lines
        assert [line for line in lines if line.startswith("error")] == [lines[-1]]
        assert not any((tmp_path / d).exists() for d in "abcde")
