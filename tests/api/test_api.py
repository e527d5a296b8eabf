"""The Python API (`editing_app.api`): the README's example, run on the shipped demo model.

The example is read from the README's "Python API" section and executed with its step counts cut
(the constants it defines at the top), so the README and this test cannot drift apart. Its
results are then checked against what edit.py's `edit` gives in-process for the same settings,
against a second edit from the same artifact, and against bad inputs.
"""

from __future__ import annotations

import re
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from editing.errors import UserInputError
from editing_app.configs import compose_config

REPO = Path(__file__).resolve().parents[2]
EXAMPLES = REPO / "assets" / "examples"
IMAGE = EXAMPLES / "red_circle.png"
MASK = EXAMPLES / "red_circle_mask.png"
# The README's constants and what this test runs them with.
QUICK = {"STEPS = 50": "STEPS = 3", "CANDIDATES = 8": "CANDIDATES = 2"}
QUICK_INNER = ("num_inner_steps=10", "num_inner_steps=2")

pytestmark = pytest.mark.skipif(
    not (REPO / "assets" / "demo" / "model" / "model_index.json").is_file(),
    reason="the shipped demo model is missing",
)


def readme_example() -> str:
    """The first python block of the README's "## Python API" section."""
    text = (REPO / "README.md").read_text()
    section = text[text.index("## Python API") :]
    match = re.search(r"```python\n(.*?)\n```", section, re.S)
    assert match, "the README's Python API section has no python block"
    return match.group(1)


def quick(source: str) -> str:
    for old, new in [*QUICK.items(), QUICK_INNER]:
        assert source.count(old) == 1, f"the README example no longer has {old!r}"
        source = source.replace(old, new)
    return source


@pytest.fixture(scope="module")
def example() -> Iterator[dict]:
    """The namespace the README example leaves (model, di, inversion, to_blue, to_green, ...)."""
    mp = pytest.MonkeyPatch()
    mp.chdir(REPO)  # the example's paths are relative to the repository, as in a notebook there
    namespace: dict = {}
    try:
        exec(compile(quick(readme_example()), "README.md:Python API", "exec"), namespace)
    finally:
        mp.undo()
    yield namespace
    shutil.rmtree(namespace["inversion"].folder)  # the example's temporary artifact folder


def pixels(image: Image.Image) -> np.ndarray:
    return np.asarray(image.convert("RGB"))


def edit_py(tmp_path: Path, overrides: list[str]) -> list[np.ndarray]:
    """edit.py's `edit` in-process with `overrides`: [edit.png, then samples/* when written]."""
    from editing_app.commands.edit import edit

    out = tmp_path / "edit_py"
    path = edit(compose_config("edit", [*overrides, f"output_dir={out}"]))
    samples = sorted((out / "samples").glob("*.png"))
    return [pixels(Image.open(p)) for p in (samples if samples else [path])]


def test_example_results_have_the_model_resolution(example):
    model = example["model"]
    assert model.resolution == 32 and model.name == "demo"
    di, to_blue, blended = example["di"], example["to_blue"], example["blended"]
    assert len(di.images) == 2 and [p["noise_lambda"] for p in di.params] == [0.3, 0.5]
    assert len(to_blue.images) == 2 and to_blue.labels[1].endswith("reconstruction")
    assert to_blue.params[0]["prompt"] == example["blue"]
    assert example["to_green"].params[0]["prompt"] == example["green"]
    assert len(blended.images) == 2  # CANDIDATES
    for out in (di, to_blue, example["to_green"], blended):
        assert out.image is out.images[0] and len(out.params) == len(out.images)
        assert all(im.size == (32, 32) and im.mode == "RGB" for im in out.images)
        assert out.params[0]["base_model"] == "demo"
    # The swept values and the edit vs the reconstruction are different images.
    assert not np.array_equal(pixels(di.images[0]), pixels(di.images[1]))
    assert not np.array_equal(pixels(to_blue.images[0]), pixels(to_blue.images[1]))
    assert blended.scores == sorted(blended.scores)  # ranked best (lowest distance) first
    # Blended Diffusion keeps every pixel outside the mask (dilated by the example's 3 pixels).
    from editing.io.images import load_image, load_mask
    from editing.io.masks import dilate_mask

    mask = load_mask(MASK, load_image(IMAGE, 32), 32)
    outside = dilate_mask(mask, 3)[0, 0].numpy() == 0
    assert outside.sum() > 100
    for im in blended.images:
        assert np.array_equal(pixels(im)[outside], pixels(blended.input)[outside])
    assert blended.grid().size == (3 * 160, 160 + 14)  # input + 2 candidates, labelled


def test_the_artifact_in_memory_gives_what_edit_py_gives_from_its_files(example, tmp_path):
    from editing_app import api

    model, inversion, to_blue = example["model"], example["inversion"], example["to_blue"]
    assert inversion.method == "null_text_p2p" and set(inversion.artifacts) == {"null_text"}
    # The same edit again, after another edit from the same artifact: the same pixels.
    again = api.edit(
        model,
        "null_text_p2p",
        IMAGE,
        target_prompt=example["blue"],
        artifact=inversion,
        **example["p2p"],
    )
    assert len(again.images) == len(to_blue.images)
    for a, b in zip(again.images, to_blue.images):
        assert np.array_equal(pixels(a), pixels(b))
    # edit.py reading the artifact file: the same pixels as the edit from memory.
    from_files = edit_py(
        tmp_path,
        [
            "method=null_text_p2p",
            "base_model=demo",
            f"image={IMAGE}",
            f"target_prompt={example['blue']}",
            f"checkpoint_dir={inversion.folder}",
            "method.blend_words=auto",
            "method.blend_resolution=0.5",
            "method.blend_threshold=0.5",
            "method.edit_null=empty",
        ],
    )
    assert len(from_files) == len(to_blue.images)
    for a, b in zip(from_files, to_blue.images):
        assert np.array_equal(a, pixels(b))


def test_edits_from_memory_read_no_file(example, monkeypatch):
    import editing.io.artifacts as artifacts
    from editing_app import api

    def no_reading(*args, **kwargs):
        raise AssertionError("an artifact file was read")

    monkeypatch.setattr(artifacts, "load_file", no_reading)
    monkeypatch.setattr(artifacts, "read_metadata", no_reading)
    out = api.edit(
        example["model"],
        "null_text_p2p",
        IMAGE,
        target_prompt=example["green"],
        artifact=example["inversion"],
        **example["p2p"],
    )
    assert np.array_equal(pixels(out.image), pixels(example["to_green"].image))


def test_direct_inversion_equals_edit_py(example, tmp_path):
    di = example["di"]
    from_cli = edit_py(
        tmp_path,
        [
            "method=direct_inversion",
            "base_model=demo",
            f"image={IMAGE}",
            f"source_prompt={example['source']}",
            f"target_prompt={example['blue']}",
            "seed=0",
            "method.invert_with_source=true",
            "method.noise_lambda=[0.3,0.5]",
            "method.num_inversion_steps=3",
            "method.num_inference_steps=3",
        ],
    )
    assert len(from_cli) == 2
    for a, b in zip(from_cli, di.images):
        assert np.array_equal(a, pixels(b))


def test_pil_images_in_any_size_are_preprocessed_like_files(example, tmp_path):
    from editing_app import api

    model = example["model"]
    settings = dict(
        source_prompt=example["source"],
        target_prompt=example["blue"],
        invert_with_source=True,
        noise_lambda=0.5,
        num_inversion_steps=2,
        num_inference_steps=2,
    )
    with Image.open(IMAGE) as opened:
        from_pil = api.edit(model, "direct_inversion", opened, **settings)
    from_path = api.edit(model, "direct_inversion", str(IMAGE), **settings)
    assert np.array_equal(pixels(from_pil.image), pixels(from_path.image))
    # A larger, non-square photo: brought to the working size of its aspect as the CLI does
    # (about 32^2 pixels, sides multiples of 4: 36x28), and back to its own size in full_size.
    big = Image.open(IMAGE).convert("RGB").resize((96, 80), Image.Resampling.BICUBIC)
    big.save(tmp_path / "big.png")
    out = api.edit(model, "direct_inversion", big, **settings)
    assert out.image.size == (36, 28) and out.input.size == (36, 28)
    assert out.full_size.size == (96, 80)
    assert np.array_equal(
        pixels(out.image),
        pixels(api.edit(model, "direct_inversion", tmp_path / "big.png", **settings).image),
    )
    assert out.save(tmp_path / "saved") == tmp_path / "saved" / "edit.png"
    assert np.array_equal(pixels(Image.open(tmp_path / "saved" / "edit.png")), pixels(out.image))


def test_imagic_trains_once_and_edits_from_memory(example, tmp_path):
    from editing_app import api

    model = example["model"]
    art = api.train(
        model,
        "imagic_demo",
        IMAGE,
        target_prompt=example["square"],
        output_dir=tmp_path / "imagic",
        embed={"num_steps": 2},
        finetune={"num_steps": 2},
    )
    assert set(art.artifacts) == {"imagic_embed", "imagic_finetune"} and art.method == "imagic"
    assert art["imagic_embed"].hparams["num_steps"] == 2
    settings = dict(eta=[0.7, 0.9], seeds=[0], num_inference_steps=3)
    out = api.edit(model, "imagic", IMAGE, artifact=art, **settings)
    assert [im.size for im in out.images] == [(32, 32)] * 2
    from_cli = edit_py(
        tmp_path,
        [
            "method=imagic",
            "base_model=demo",
            f"image={IMAGE}",
            f"checkpoint_dir={art.folder}",
            "method.eta=[0.7,0.9]",
            "method.seeds=[0]",
            "method.num_inference_steps=3",
        ],
    )
    for a, b in zip(from_cli, out.images):
        assert np.array_equal(a, pixels(b))
    # The same folder read back by load_artifacts gives the same edit.
    loaded = api.load_artifacts(art.folder)
    assert set(loaded.artifacts) == set(art.artifacts) and loaded.method == "imagic"
    again = api.edit(model, "imagic", IMAGE, artifact=loaded, **settings)
    assert np.array_equal(pixels(again.image), pixels(out.image))


def _temporary_folders() -> set[Path]:
    return set(Path(tempfile.gettempdir()).glob("editing-null_text-*"))


@pytest.mark.parametrize(
    "call",
    [
        "unknown_method",
        "unknown_setting",
        "out_of_range",
        "wrong_type",
        "mask_of_another_size",
        "missing_image",
        "artifact_for_another_method",
        "artifact_for_another_image",
    ],
)
def test_bad_edit_inputs_raise_one_line(example, call, tmp_path):
    from editing_app import api

    model, inversion = example["model"], example["inversion"]
    blue = example["blue"]
    calls = {
        "unknown_method": lambda: api.edit(model, "nope", IMAGE),
        "unknown_setting": lambda: api.edit(model, "direct_inversion", IMAGE, noise_lamda=0.5),
        "out_of_range": lambda: api.edit(model, "direct_inversion", IMAGE, noise_lambda=1.5),
        "wrong_type": lambda: api.edit(model, "direct_inversion", IMAGE, seed="abc"),
        "mask_of_another_size": lambda: api.edit(
            model, "blended", IMAGE, mask=Image.new("L", (10, 10), 255), target_prompt=blue
        ),
        "missing_image": lambda: api.edit(model, "direct_inversion", tmp_path / "none.png"),
        "artifact_for_another_method": lambda: api.edit(
            model, "direct_inversion", IMAGE, target_prompt=blue, artifact=inversion
        ),
        "artifact_for_another_image": lambda: api.edit(
            model,
            "null_text_p2p",
            EXAMPLES / "blue_square.png",
            target_prompt=blue,
            artifact=inversion,
        ),
    }
    before = sorted(tmp_path.rglob("*"))
    with pytest.raises(UserInputError) as err:
        calls[call]()
    assert "\n" not in str(err.value) and str(err.value)
    assert sorted(tmp_path.rglob("*")) == before  # nothing written


def test_bad_training_inputs_write_nothing(example, tmp_path):
    from editing_app import api

    model = example["model"]
    before = _temporary_folders()
    bad = [
        dict(image=tmp_path / "missing.png", source_prompt="a cat"),
        dict(image=IMAGE, source_prompt="a cat", lr=-1),
        dict(image=IMAGE, source_prompt="a cat", num_inner_stepz=2),
        dict(image=IMAGE, source_prompt="a cat", trainer={"devices": 2}),
        dict(image=None, source_prompt="a cat"),
    ]
    for kwargs in bad:
        for output_dir in (tmp_path / "never", None):
            with pytest.raises(UserInputError) as err:
                api.train(model, "null_text", output_dir=output_dir, **kwargs)
            assert "\n" not in str(err.value), kwargs
            assert not (tmp_path / "never").exists(), kwargs
    assert _temporary_folders() == before
    with pytest.raises(UserInputError, match="unknown stage"):
        api.train(model, "nope", IMAGE)


def test_load_model_refuses_bad_arguments():
    from editing_app import api

    for kwargs in (
        dict(name_or_path="no_such_model"),
        dict(name_or_path="demo", device="tpu"),
        dict(name_or_path="demo", dtype="float16"),  # the demo config has no dtype setting
        dict(name_or_path="demo", pathh="x"),
    ):
        with pytest.raises(UserInputError):
            api.load_model(**kwargs)
    assert "demo" in api.base_model_names() and "direct_inversion" in api.method_names()
