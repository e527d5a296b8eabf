"""Scenes of the shapes world: vocabulary, sampling, captions and their parser."""

from __future__ import annotations

import itertools
from dataclasses import replace

import numpy as np
import pytest

from demo_world.oracle import hue_degrees
from demo_world.scene import (
    ObjectSpec,
    Scene,
    caption,
    far_apart,
    max_offset,
    parse_caption,
    sample_scene,
)
from demo_world.vocabulary import BACKGROUNDS, COLOURS, POSITIONS, SHAPES, SIZES, WORDS


def test_vocabulary_is_rich_and_separable():
    assert {"circle", "square", "triangle", "star", "cross"} <= set(SHAPES)
    assert len(COLOURS) >= 6 and set(SIZES) == {"small", "large"} and len(POSITIONS) == 9
    hues = [float(hue_degrees(np.asarray(rgb, dtype=float))) for rgb in COLOURS.values()]
    for a, b in itertools.combinations(hues, 2):
        assert abs((a - b + 180) % 360 - 180) >= 45
    for rgb in COLOURS.values():
        assert max(rgb) - min(rgb) >= 140  # saturated
    assert len({b.pattern for b in BACKGROUNDS.values()}) >= 4  # plain, gradient, stripes, noise
    assert SIZES["small"] * 32 >= 9.5 and SIZES["large"] * 32 >= 14


def test_same_generator_state_same_scene_and_seeds_differ():
    scenes_a = [sample_scene(np.random.default_rng([0, k])) for k in range(50)]
    scenes_b = [sample_scene(np.random.default_rng([0, k])) for k in range(50)]
    scenes_c = [sample_scene(np.random.default_rng([1, k])) for k in range(50)]
    assert scenes_a == scenes_b
    assert scenes_a != scenes_c


def test_sampled_scenes_cover_the_vocabulary_and_respect_the_layout():
    rng = np.random.default_rng(0)
    scenes = [sample_scene(rng, two_object_prob=0.5) for _ in range(600)]
    objects = [o for s in scenes for o in s.objects]
    assert {o.shape for o in objects} == set(SHAPES)
    assert {o.colour for o in objects} == set(COLOURS)
    assert {o.position for o in objects} == set(POSITIONS)
    assert {s.background for s in scenes} == set(BACKGROUNDS)
    counts = [len(s.objects) for s in scenes]
    assert set(counts) == {1, 2} and 0.4 < counts.count(2) / len(counts) < 0.6
    for s in scenes:
        if len(s.objects) == 2:
            assert far_apart(s.objects[0].position, s.objects[1].position)
    for o in objects:
        assert max(abs(o.offset[0]), abs(o.offset[1])) <= max_offset(o.size)
    assert any(o.offset != (0.0, 0.0) for o in objects)
    assert all(len(sample_scene(rng, max_objects=1).objects) == 1 for _ in range(50))


def test_caption_parse_round_trip_and_words():
    rng = np.random.default_rng(1)
    for _ in range(300):
        scene = sample_scene(rng, two_object_prob=0.5)
        text = caption(scene)
        zero = Scene(tuple(replace(o, offset=(0.0, 0.0)) for o in scene.objects), scene.background)
        assert parse_caption(text) == zero
        assert caption(parse_caption(text)) == text
        assert set(text.split()) <= set(WORDS)


def test_caption_reads_naturally():
    scene = Scene(
        (
            ObjectSpec("star", "blue", "small", "left"),
            ObjectSpec("square", "yellow", "large", "bottom right"),
        ),
        "white",
    )
    assert caption(scene) == (
        "a small blue star on the left and a large yellow square at the bottom right "
        "on a white background"
    )
    one = Scene((ObjectSpec("circle", "red", "large", "top left"),), "gray")
    assert caption(one) == "a large red circle at the top left on a gray background"
    assert parse_caption("  A large red circle at the top left on a gray background. ") == one


@pytest.mark.parametrize(
    "text",
    [
        "a large red circle at the top left",  # no background
        "a large pink circle at the top left on a gray background",  # unknown colour
        "a large red circle somewhere on a gray background",  # unknown place
        "large red circle at the top left on a gray background",  # no article
    ],
)
def test_parse_rejects_text_outside_the_vocabulary(text):
    with pytest.raises(ValueError):
        parse_caption(text)


def test_specs_validate_their_fields():
    with pytest.raises(ValueError, match="colour"):
        ObjectSpec("circle", "pink", "small", "top")
    with pytest.raises(ValueError, match="offset"):
        ObjectSpec("circle", "red", "large", "top", offset=(0.5, 0.0))
    near = (ObjectSpec("circle", "red", "small", "top"), ObjectSpec("star", "red", "small", "left"))
    with pytest.raises(ValueError, match="too close"):
        Scene(near, "gray")
    with pytest.raises(ValueError, match="background"):
        Scene(near[:1], "purple")
