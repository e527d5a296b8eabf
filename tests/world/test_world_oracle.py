"""The attribute oracle: accuracy bars on the world's own images, and judging."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
import torch

from demo_world.oracle import ATTRIBUTES, judge, judge_object, read_image
from demo_world.render import RenderStyle, object_masks, render
from demo_world.scene import ObjectSpec, Scene, sample_scene
from demo_world.vocabulary import BACKGROUNDS, COLOURS, SHAPES

KEYS = (*ATTRIBUTES, "background", "count")


def _accuracy(resolution: int, n: int, style: RenderStyle | None, seed: int) -> dict[str, float]:
    hits = dict.fromkeys(KEYS, 0)
    for k in range(n):
        rng = np.random.default_rng([seed, k])
        scene = sample_scene(rng, two_object_prob=0.5)
        verdict = judge(read_image(render(scene, resolution, rng, style)), scene)
        for key in KEYS:
            hits[key] += verdict[key]
    return {key: hits[key] / n for key in KEYS}


@pytest.mark.parametrize("resolution", [32, 64])
def test_oracle_reads_the_generator_images(resolution):
    accuracy = _accuracy(resolution, 500, None, seed=100)
    assert min(accuracy.values()) >= 0.98, accuracy


@pytest.mark.parametrize("resolution", [32, 64])
def test_oracle_reads_the_real_looking_style(resolution):
    accuracy = _accuracy(resolution, 250, RenderStyle(), seed=200)
    assert min(accuracy.values()) >= 0.95, accuracy


def test_reading_fields_and_order():
    big = ObjectSpec("square", "blue", "large", "bottom right")
    small = ObjectSpec("star", "yellow", "small", "top left", (0.1, -0.1))
    scene = Scene((small, big), "gradient")
    reading = read_image(render(scene, 32))
    assert reading.background == "gradient"
    assert [(o.shape, o.colour, o.size, o.position) for o in reading.objects] == [
        ("square", "blue", "large", "bottom right"),
        ("star", "yellow", "small", "top left"),
    ]
    assert reading.objects[0].area > reading.objects[1].area
    masks = object_masks(scene, 32)
    for found, mask in zip(reading.objects, masks[::-1]):
        assert found.mask.dtype == bool and found.mask.shape == (32, 32)
        assert (found.mask != mask).sum() <= 0.1 * mask.sum()
        ys, xs = np.nonzero(mask)
        assert (
            np.hypot(found.centroid[0] - xs.mean() - 0.5, found.centroid[1] - ys.mean() - 0.5) < 1
        )


def test_tensor_input_reads_like_uint8():
    scene = Scene((ObjectSpec("cross", "magenta", "large", "center"),), "striped")
    image = render(scene, 32)
    tensor = torch.from_numpy(image).permute(2, 0, 1).float() / 127.5 - 1
    a, b = read_image(image), read_image(tensor)
    assert a.background == b.background == "striped"
    assert [(o.shape, o.colour, o.size, o.position, o.area) for o in a.objects] == [
        (o.shape, o.colour, o.size, o.position, o.area) for o in b.objects
    ]
    with pytest.raises(ValueError, match="expected"):
        read_image(np.zeros((32, 32), dtype=np.uint8))


def test_every_colour_and_shape_on_every_background():
    for background in BACKGROUNDS:
        for colour in COLOURS:
            for shape in SHAPES:
                scene = Scene((ObjectSpec(shape, colour, "small", "center"),), background)
                verdict = judge(read_image(render(scene, 32)), scene)
                assert all(verdict.values()), (background, colour, shape, verdict)


def test_judge_flags_exactly_the_wrong_attribute():
    spec = ObjectSpec("triangle", "green", "large", "top right")
    other = ObjectSpec("circle", "red", "small", "bottom left", (0.2, 0.1))
    scene = Scene((spec, other), "white")
    reading = read_image(render(scene, 32))
    assert all(judge(reading, scene).values())
    wrong = {
        "colour": replace(spec, colour="blue"),
        "shape": replace(spec, shape="square"),
        "size": replace(spec, size="small"),
        "position": replace(spec, position="bottom right"),
    }
    for attribute, bad in wrong.items():
        verdict = judge(reading, Scene((bad, other), "white"))
        assert {k for k, v in verdict.items() if not v} == {attribute}
        single = judge_object(reading, bad)
        assert {k for k, v in single.items() if not v} == {attribute}
    verdict = judge(reading, Scene((spec, other), "black"))
    assert {k for k, v in verdict.items() if not v} == {"background"}
    verdict = judge(reading, Scene((spec,), "white"))
    assert {k for k, v in verdict.items() if not v} == {"count"}


def test_missing_objects_fail_every_attribute():
    spec = ObjectSpec("circle", "red", "small", "center")
    empty = np.full((32, 32, 3), 128, dtype=np.uint8)
    reading = read_image(empty)
    assert reading.objects == [] and reading.background == "gray"
    assert judge_object(reading, spec) == dict.fromkeys(("found", *ATTRIBUTES), False)
    assert judge(reading, Scene((spec,), "gray")) == {
        **dict.fromkeys((*ATTRIBUTES, "count"), False),
        "background": True,
    }


def test_specks_are_not_objects():
    scene = Scene((ObjectSpec("square", "cyan", "small", "left"),), "gray")
    image = render(scene, 32)
    image[28:30, 28:30] = COLOURS["red"]  # a 2x2 saturated speck
    reading = read_image(image)
    assert [(o.shape, o.colour) for o in reading.objects] == [("square", "cyan")]
