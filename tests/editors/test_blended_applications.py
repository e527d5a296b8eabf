"""The paper's applications on the demo model: presets (scribble, background) and extrapolation.

The demo model (32 px pixel model) and the shipped demo CLIP run with a few respaced steps; the
checks are on what the presets set, on the exact pixels kept and on the output geometry.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from helpers import compose_config
from PIL import Image

from demo_world.asset_paths import asset_path
from editing.editors.blended import BlendedEditor, BlendedSampler
from editing.editors.blended_presets import preset_skip
from editing.errors import UserInputError
from editing.io.edit_inputs import Inputs
from editing.io.images import load_image, load_mask
from editing_app.registry import build_editor

EXAMPLES = asset_path("examples")
CLIP = asset_path("demo/clip")
FAST = dict(num_timesteps=10, num_augmentations=1, num_candidates=1, clip_path=CLIP)


@pytest.fixture(scope="module")
def demo():
    from demo_world.demo_model import load_demo_model

    return load_demo_model()


@pytest.fixture(scope="module")
def circle(demo) -> Inputs:
    image = load_image(f"{EXAMPLES}/red_circle.png", demo.resolution)
    mask = load_mask(f"{EXAMPLES}/red_circle_mask.png", image, demo.resolution)
    return Inputs(image=image, mask=mask, target_prompt="a red circle on a blue background")


@pytest.fixture
def skips(monkeypatch) -> list[int]:
    """The skip_timesteps every `BlendedSampler.sample` call actually ran with."""
    seen: list[int] = []
    original = BlendedSampler.sample

    def spy(self, seeds, skip_timesteps, paste):
        seen.append(skip_timesteps)
        return original(self, seeds, skip_timesteps, paste)

    monkeypatch.setattr(BlendedSampler, "sample", spy)
    return seen


# --- presets ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "preset, skip, invert", [("none", 25, False), ("scribble", 40, False), ("background", 33, True)]
)
def test_presets_set_the_paper_k_on_100_steps(preset, skip, invert):
    editor = BlendedEditor(preset=preset)
    assert (editor.skip_timesteps, editor.invert_mask) == (skip, invert)
    assert editor.num_timesteps - editor.skip_timesteps == {"none": 75, "scribble": 60}.get(
        preset, 67
    )  # k, the step the chain starts from


def test_presets_keep_k_as_a_fraction_of_a_shorter_chain():
    assert [preset_skip(p, 10) for p in ("none", "scribble", "background")] == [2, 4, 3]
    assert BlendedEditor(preset="scribble", num_timesteps=10).skip_timesteps == 4


def test_explicit_settings_override_the_preset():
    editor = BlendedEditor(preset="background", skip_timesteps=5, invert_mask=False)
    assert (editor.skip_timesteps, editor.invert_mask, editor.preset) == (5, False, "background")
    # The same through the config (the YAML's nulls mean "the preset's").
    made = build_editor("blended", ["method.preset=scribble", "method.skip_timesteps=30"])
    assert (made.skip_timesteps, made.invert_mask) == (30, False)
    made = build_editor("blended", ["method.preset=background", "method.invert_mask=false"])
    assert (made.skip_timesteps, made.invert_mask) == (33, False)
    made = build_editor("blended", ["method.preset=background"])
    assert (made.skip_timesteps, made.invert_mask) == (33, True)


def test_a_bad_preset_is_refused_in_one_line():
    with pytest.raises(UserInputError, match=r"method.preset='sketch' is not one of none"):
        BlendedEditor(preset="sketch")
    with pytest.raises(UserInputError, match="method.skip_timesteps"):
        BlendedEditor(preset="scribble", num_timesteps=10, skip_timesteps=10)


def test_background_preset_edits_outside_the_object_and_keeps_it_exactly(demo, circle, skips):
    editor = BlendedEditor(preset="background", **FAST)
    result = editor(demo, circle)[0]
    assert skips == [preset_skip("background", 10)] == [3]
    assert result.params["preset"] == "background" and result.params["skip_timesteps"] == 3
    source, obj = circle.image.pixels[0], circle.mask[0, 0] > 0.5
    assert torch.equal(result.image[:, obj], source[:, obj])  # the object: bit for bit
    changed = (result.image - source).abs().amax(0) > 1e-3
    assert changed[~obj].float().mean() > 0.5  # the background was regenerated


def test_scribble_preset_starts_from_the_noised_scribble(demo, circle, skips):
    # The "scribble": a yellow blob painted into the image, its mask the blob.
    pixels = circle.image.pixels.clone()
    blob = torch.zeros(1, 1, 32, 32)
    blob[..., 20:28, 4:12] = 1
    pixels = torch.where(blob > 0, torch.tensor([1.0, 1.0, -1.0]).view(1, 3, 1, 1), pixels)
    image = type(circle.image)(pixels, "", "<scribble>", (32, 32))
    inputs = Inputs(image=image, mask=blob, target_prompt="a yellow square")
    result = BlendedEditor(preset="scribble", **FAST)(demo, inputs)[0]
    assert skips == [4] and result.params["skip_timesteps"] == 4
    keep = blob[0, 0] == 0
    assert torch.equal(result.image[:, keep], pixels[0][:, keep])
    assert not torch.equal(result.image, pixels[0])  # the scribble was edited


# --- extrapolation -----------------------------------------------------------------------------


def _extrapolated(demo, circle, spec, **kw):
    editor = BlendedEditor(extrapolate=spec, **{**FAST, "num_timesteps": 6, **kw})
    inputs = Inputs(image=circle.image, target_prompt="a blue background", seed=3)
    return editor(demo, inputs)[0]


@pytest.mark.parametrize(
    "spec, shape, kept",
    [
        ("right:2", (3, 32, 48), (slice(None), slice(0, 32))),
        ("left:1", (3, 32, 40), (slice(None), slice(8, 40))),
        ("up:1", (3, 40, 32), (slice(8, 40), slice(None))),
        ("down:3", (3, 56, 32), (slice(0, 32), slice(None))),
    ],
)
def test_extrapolation_grows_by_quarter_shifts_and_keeps_the_input(demo, circle, spec, shape, kept):
    result = _extrapolated(demo, circle, spec)
    assert tuple(result.image.shape) == shape
    source = circle.image.pixels[0]
    assert torch.equal(result.image[(slice(None), *kept)], source)  # pasted back exactly
    new = torch.ones(shape[1:], dtype=torch.bool)
    new[kept] = False
    # The starting colours were the input's edge replicated; the strips are generated.
    edge = {"r": source[:, :, -1:], "l": source[:, :, :1], "u": source[:, :1], "d": source[:, -1:]}
    padding = edge[spec[0]].expand(3, *shape[1:])
    assert (result.image - padding).abs()[:, new].amax(0).mean() > 0.05
    n = int(spec.split(":")[1])
    assert result.params["extrapolate"] == spec and len(result.params["strip_scores"]) == n


def test_extrapolation_final_pass_runs_each_strip_again_from_a_low_level(demo, circle, skips):
    _extrapolated(demo, circle, "right:2", extrapolate_final=0.5)
    assert skips == [2, 2, 3, 3]  # 2 shifts at the editor's skip, then k = 3 of 6 per strip
    skips.clear()
    _extrapolated(demo, circle, "right:2", extrapolate_final=0)
    assert skips == [2, 2]


def test_extrapolation_refusals(demo, circle):
    with pytest.raises(UserInputError, match="method.extrapolate='sideways'"):
        BlendedEditor(extrapolate="sideways")
    with pytest.raises(UserInputError, match="drop mask="):
        BlendedEditor(extrapolate="right:1", **FAST)(demo, circle)
    with pytest.raises(UserInputError, match="preset=none"):
        _extrapolated(demo, circle, "right:1", preset="background")


def test_edit_py_writes_the_wider_image(tmp_path):
    from editing_app.commands.edit import edit

    cfg = compose_config(
        "edit",
        [
            "method=blended",
            "base_model=demo",
            "clip=demo",
            f"image={EXAMPLES}/red_circle.png",
            "target_prompt=a blue background",
            f"output_dir={tmp_path / 'out'}",
            "device=cpu",
            "method.extrapolate=right:2",
            "method.num_timesteps=4",
            "method.num_augmentations=1",
            "method.num_candidates=1",
        ],
    )
    out = edit(cfg)
    written = np.asarray(Image.open(out))
    source = np.asarray(Image.open(f"{EXAMPLES}/red_circle.png").convert("RGB"))
    assert source.shape == (32, 32, 3) and written.shape == (32, 48, 3)
    assert np.array_equal(written[:, :32], source)  # the input, bit for bit after the PNG
    grid = Image.open(out.parent / "grid.png")
    assert grid.size[0] == 2 * 160  # input + result, each fit into its cell
