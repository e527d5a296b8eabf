"""Suite readers on small fixture files of each format, the demo suite, sharding, case inputs."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from editing.errors import UserInputError
from editing_app.evaluation.case_inputs import case_inputs, case_mask
from editing_app.evaluation.piebench import piebench_suite, split_brackets
from editing_app.evaluation.rle import RleMask
from editing_app.evaluation.suites import demo_suite, select_shard
from editing_app.evaluation.tedbench import tedbench_suite

FIXTURES = Path(__file__).parent / "fixtures"
TED, PIE = FIXTURES / "tedbench", FIXTURES / "piebench"


def test_tedbench_objects_as_shipped():
    cases = tedbench_suite(str(TED))
    assert [c.case_id for c in cases] == ["000_cat", "001_dog"]
    cat, dog = cases
    assert cat.image == TED / "originals" / "cat.png" and cat.image.is_file()
    assert cat.target_prompt == "a photo of a cat sitting" and cat.source_prompt == ""
    assert dog.source_prompt == "a photo of a dog" and dog.mask is None
    # a default caption for entries without one
    assert tedbench_suite(str(TED), source_prompt="a photo")[0].source_prompt == "a photo"


def test_tedbench_pairs_and_paths_relative_to_the_folder():
    cat, dog = tedbench_suite(str(TED), list_file="input_list_pairs.json")
    assert (cat.target_prompt, cat.source_prompt) == ("a red cat", "")
    assert (dog.target_prompt, dog.source_prompt) == ("a blue dog", "a dog")
    assert dog.image == TED / "originals" / "dog.png"  # "originals/dog.png" found under the folder


def test_tedbench_missing_image_is_a_case_not_a_reading_error():
    cases = tedbench_suite(str(TED), list_file="input_list_missing.json")
    assert not cases[1].image.exists()


def test_tedbench_bad_files_are_user_errors(tmp_path):
    with pytest.raises(UserInputError, match="not a folder"):
        tedbench_suite(str(tmp_path / "nope"))
    with pytest.raises(UserInputError, match="not found"):
        tedbench_suite(str(tmp_path))
    (tmp_path / "input_list.json").write_text(json.dumps([{"img_name": "a.png"}]))
    with pytest.raises(UserInputError, match="entry 0 has none of the keys target_text"):
        tedbench_suite(str(tmp_path))
    (tmp_path / "input_list.json").write_text(json.dumps([["a.png"]]))
    with pytest.raises(UserInputError, match="entry 0 must be"):
        tedbench_suite(str(tmp_path))
    (tmp_path / "input_list.json").write_text("{not json")
    with pytest.raises(UserInputError, match="not valid JSON"):
        tedbench_suite(str(tmp_path))


def test_split_brackets():
    assert split_brackets("a [white  cat] sitting [on] it") == (
        "a white cat sitting on it",
        ["white", "cat", "on"],
    )
    assert split_brackets("no brackets") == ("no brackets", [])


def test_piebench_mapping_file():
    cases = piebench_suite(str(PIE))
    assert [c.case_id for c in cases] == ["000000000000", "111000000000"]
    first, second = cases
    assert first.source_prompt == "a red square on a gray background"
    assert first.target_prompt == "a blue square on a gray background"
    assert first.edit_type == "change_attribute_color" and second.edit_type == "change_object"
    assert first.extra["blend_words"] == [["red"], ["blue"]]
    assert second.extra["blended_word"] == "square circle"
    assert second.image.is_file()
    assert isinstance(first.mask, RleMask) and first.mask.border
    # hand-checked decode of the fixture's masks (16 x 16 images)
    expected = np.zeros((16, 16), bool)
    expected[4:12, 4:12] = True  # first: runs of 8 from 16 r + 4 for rows 4..11
    np.testing.assert_array_equal(RleMask(first.mask.counts).decode((16, 16)), expected)
    expected = np.zeros(256, bool)
    expected[[0, 1, 2, 20, 21, 22, 23]] = True
    expected[250:] = True  # [250, 10] clipped at the last pixel
    np.testing.assert_array_equal(RleMask(second.mask.counts).decode((16, 16)).ravel(), expected)
    # the reference's border rule
    border = second.mask.decode((16, 16))
    assert border[0].all() and border[-1].all() and border[:, 0].all() and border[:, -1].all()
    assert not border[5, 5]


def test_piebench_edit_type_filter_and_errors(tmp_path):
    assert [c.case_id for c in piebench_suite(str(PIE), edit_types=["change_object"])] == [
        "111000000000"
    ]
    assert [c.case_id for c in piebench_suite(str(PIE), edit_types=[6])] == ["000000000000"]
    with pytest.raises(UserInputError, match="unknown"):
        piebench_suite(str(PIE), edit_types=["rotate"])
    mapping = json.loads((PIE / "mapping_file.json").read_text())
    mapping["000000000000"]["mask"] = [1, 2, 3]
    (tmp_path / "mapping_file.json").write_text(json.dumps(mapping))
    with pytest.raises(UserInputError, match="case 000000000000: mask must be RLE"):
        piebench_suite(str(tmp_path))
    mapping["000000000000"]["mask"] = [1, 2]
    mapping["000000000000"]["editing_type_id"] = "12"
    (tmp_path / "mapping_file.json").write_text(json.dumps(mapping))
    with pytest.raises(UserInputError, match="editing_type_id"):
        piebench_suite(str(tmp_path))


def test_demo_suite_cases_carry_the_ground_truth():
    cases = demo_suite(["colour", "add"], n=2, seed=3, resolution=32)
    assert [c.case_id for c in cases] == ["colour-000", "colour-001", "add-000", "add-001"]
    for case in cases:
        assert case.image.shape == (32, 32, 3) and case.image.dtype == np.uint8
        assert case.mask.shape == (32, 32) and case.mask.dtype == bool and case.mask.any()
        assert {"source_scene", "target_scene", "target_image"} <= set(case.extra)
        assert case.source_prompt != case.target_prompt
    assert demo_suite(["colour"], 2, 3)[1].target_prompt == cases[1].target_prompt  # seeded
    with pytest.raises(UserInputError, match="choose from"):
        demo_suite(["rotate"])


def test_shards_are_round_robin_and_cover_every_case():
    cases = demo_suite(["colour", "shape"], n=3)
    shards = [select_shard(cases, s, 2) for s in range(2)]
    assert [c.case_id for c in shards[0]] == ["colour-000", "colour-002", "shape-001"]
    ids = sorted(c.case_id for shard in shards for c in shard)
    assert ids == sorted(c.case_id for c in cases)
    with pytest.raises(UserInputError, match="outside"):
        select_shard(cases, 2, 2)


def test_case_inputs_preprocess_like_load_image(tmp_path):
    from editing.io.images import load_image

    (cat,) = tedbench_suite(str(TED))[:1]
    inputs = case_inputs(cat, 32, seed=5, checkpoint_dir=tmp_path)
    reference = load_image(cat.image, 32)
    assert torch.equal(inputs.image.pixels, reference.pixels)
    assert inputs.mask is None and inputs.seed == 5 and inputs.checkpoint_dir == tmp_path
    # an in-memory image at another resolution goes through the same resize + crop
    (case,) = demo_suite(["shape"], n=1, resolution=64)
    small = case_inputs(case, 32, 0, tmp_path)
    assert small.image.pixels.shape == (1, 3, 32, 32) and small.image.original_size == (64, 64)
    assert small.mask.shape == (1, 1, 32, 32) and set(small.mask.unique().tolist()) <= {0.0, 1.0}
    # a PIE-Bench mask is decoded at the image's size, then resized like the image
    first = piebench_suite(str(PIE), mask_border=False)[0]
    image = case_inputs(first, 32, 0, tmp_path).image
    mask = case_mask(first, image, 32)[0, 0]
    expected = np.zeros((32, 32), np.float32)
    expected[8:24, 8:24] = 1
    np.testing.assert_array_equal(mask.numpy(), expected)
