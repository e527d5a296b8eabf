"""Edit suites: deterministic cases that change exactly the intended attribute."""

from __future__ import annotations

import numpy as np
import pytest

from demo_world.oracle import judge, read_image
from demo_world.scene import caption
from demo_world.suite import EDIT_TYPES, make_suite


def _changed(case) -> set[str]:
    """Which fields differ between the source and target scenes."""
    source, target = case.source_scene, case.target_scene
    changed = set()
    if source.background != target.background:
        changed.add("background")
    if len(source.objects) != len(target.objects):
        changed.add("count")
        return changed
    for a, b in zip(source.objects, target.objects):
        for field in ("colour", "shape", "size", "position", "offset"):
            if getattr(a, field) != getattr(b, field):
                changed.add(field)
    return changed


EXPECTED = {
    "colour": {"colour"},
    "shape": {"shape"},
    "size": {"size"},
    "position": {"position"},
    "background": {"background"},
    "add": {"count"},
    "remove": {"count"},
}


@pytest.mark.parametrize("edit_type", EDIT_TYPES)
def test_cases_change_exactly_the_intended_attribute(edit_type):
    cases = make_suite(edit_type, 12, seed=0, resolution=32)
    assert [c.case_id for c in cases] == [f"{edit_type}-{i:03d}" for i in range(12)]
    for case in cases:
        assert _changed(case) == EXPECTED[edit_type]
        assert case.source_prompt == caption(case.source_scene)
        assert case.target_prompt == caption(case.target_scene)
        assert case.image.dtype == np.uint8 and case.image.shape == (32, 32, 3)
        assert case.mask.dtype == bool and case.mask.shape == (32, 32)
        assert all(judge(read_image(case.image), case.source_scene).values()), case.case_id
        assert all(judge(read_image(case.target_image), case.target_scene).values()), case.case_id
        changed = np.any(case.image != case.target_image, axis=2)
        assert changed.any() and not (changed & ~case.mask).any(), case.case_id
    if edit_type == "add":
        for case in cases:
            kept, added = case.target_scene.objects
            assert kept == case.source_scene.objects[0]
            assert case.target_prompt.startswith(case.source_prompt.split(" on a ")[0] + " and ")
    if edit_type == "remove":
        for case in cases:
            assert case.target_scene.objects[0] in case.source_scene.objects


def test_mask_is_local_for_object_edits():
    for edit_type in ("colour", "shape", "size", "remove"):
        for case in make_suite(edit_type, 8, resolution=32):
            assert case.mask.mean() < 0.35, case.case_id


def test_suites_are_deterministic_and_seeded():
    for edit_type in EDIT_TYPES:
        a, b = make_suite(edit_type, 4, seed=3), make_suite(edit_type, 4, seed=3)
        for x, y in zip(a, b):
            assert x.source_scene == y.source_scene and x.target_scene == y.target_scene
            assert x.image.tobytes() == y.image.tobytes()
            assert x.target_image.tobytes() == y.target_image.tobytes()
            assert np.array_equal(x.mask, y.mask)
        other = make_suite(edit_type, 4, seed=4)
        assert [c.source_scene for c in a] != [c.source_scene for c in other]


def test_suite_at_64_and_unknown_type():
    (case,) = make_suite("shape", 1, resolution=64)
    assert case.image.shape == (64, 64, 3) and case.mask.shape == (64, 64)
    assert all(judge(read_image(case.target_image), case.target_scene).values())
    with pytest.raises(ValueError, match="edit type"):
        make_suite("rotate", 1)
