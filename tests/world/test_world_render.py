"""Rendering of the shapes world: determinism, geometry, masks and the real-looking style."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage

from demo_world.render import RenderStyle, background_image, object_masks, render
from demo_world.scene import ObjectSpec, Scene, max_offset, sample_scene
from demo_world.vocabulary import COLOURS, SHAPES


def _scenes(n: int, seed: int = 0) -> list[Scene]:
    rng = np.random.default_rng(seed)
    return [sample_scene(rng, two_object_prob=0.5) for _ in range(n)]


@pytest.mark.parametrize("resolution", [32, 64])
def test_render_is_deterministic_uint8(resolution):
    for scene in _scenes(20):
        for style in (None, RenderStyle()):
            a = render(scene, resolution, np.random.default_rng(3), style)
            b = render(scene, resolution, np.random.default_rng(3), style)
            assert a.dtype == np.uint8 and a.shape == (resolution, resolution, 3)
            assert a.tobytes() == b.tobytes()
    assert render(scene).tobytes() == render(scene).tobytes()  # rng=None: a fixed seed


def test_generator_drives_noise_and_style():
    noisy = Scene((ObjectSpec("circle", "red", "small", "center"),), "noisy")
    plain = Scene(noisy.objects, "gray")
    a, b = (render(noisy, 32, np.random.default_rng(s)) for s in (0, 1))
    assert not np.array_equal(a, b)
    a, b = (render(plain, 32, np.random.default_rng(s)) for s in (0, 1))
    assert np.array_equal(a, b)  # nothing random in a plain, unstyled render
    a, b = (render(plain, 32, np.random.default_rng(s), RenderStyle()) for s in (0, 1))
    assert not np.array_equal(a, b)


@pytest.mark.parametrize("resolution", [32, 64])
def test_masks_match_rendered_objects(resolution):
    for scene in _scenes(60, seed=1):
        image = render(scene, resolution, np.random.default_rng(0)).astype(int)
        noise = np.random.default_rng(0).standard_normal((resolution, resolution))
        gray = np.clip(np.round(background_image(scene.background, resolution, noise)), 0, 255)
        masks = object_masks(scene, resolution)
        assert len(masks) == len(scene.objects)
        rim = np.zeros((resolution, resolution), dtype=bool)
        for obj, mask in zip(scene.objects, masks):
            assert mask.dtype == bool and mask.shape == (resolution, resolution)
            interior = ndimage.binary_erosion(mask, np.ones((3, 3), dtype=bool))
            assert interior.any()
            assert (image[interior] == COLOURS[obj.colour]).all()
            rim |= ndimage.binary_dilation(mask, np.ones((3, 3), dtype=bool), iterations=2)
            assert not (mask[0].any() or mask[-1].any() or mask[:, 0].any() or mask[:, -1].any())
        outside = ~rim
        assert (image[outside] == gray[outside][:, None]).all()
        if len(masks) == 2:  # far-apart objects never touch
            grown = ndimage.binary_dilation(masks[0], np.ones((3, 3), dtype=bool))
            assert not (grown & masks[1]).any()


def test_objects_are_large_enough_at_32():
    for shape in SHAPES:
        for size, least in (("small", 9), ("large", 13)):
            scene = Scene((ObjectSpec(shape, "red", size, "center"),), "gray")
            (mask,) = object_masks(scene, 32)
            ys, xs = np.nonzero(mask)
            assert max(np.ptp(xs), np.ptp(ys)) + 1 >= least, (shape, size)


def test_two_large_objects_jittered_towards_each_other_stay_apart():
    m = max_offset("large")
    for a, b, offset in (("top left", "top right", (m, m)), ("top", "bottom", (m, m))):
        for shape in ("square", "cross", "circle"):
            objects = (
                ObjectSpec(shape, "red", "large", a, offset),
                ObjectSpec(shape, "red", "large", b, (-offset[0], -offset[1])),
            )
            masks = object_masks(Scene(objects, "gray"), 32)
            grown = ndimage.binary_dilation(masks[0], np.ones((3, 3), dtype=bool))
            assert not (grown & masks[1]).any(), (a, b, shape)


def test_style_is_a_slight_change():
    for scene in _scenes(20, seed=2):
        clean = render(scene, 32, np.random.default_rng(0)).astype(float)
        styled = render(scene, 32, np.random.default_rng(0), RenderStyle()).astype(float)
        assert 1.0 < np.abs(clean - styled).mean() < 15.0
