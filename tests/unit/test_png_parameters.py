"""The A1111-style `parameters` PNG chunk: written beside the project's own fields, read back with
PIL, in the shape PNG-info tools parse."""

from __future__ import annotations

import re

import torch
from helpers import compose_config
from PIL import Image

from editing.io.outputs import EditResult, write_outputs
from editing.io.png_parameters import a1111_parameters

# AUTOMATIC1111's own pattern for the settings line (modules/infotext_utils.py, `re_param_code`).
A1111_SETTING = re.compile(r'\s*(\w[\w \-/]+):\s*("(?:\\.|[^\\"])+"|[^,]*)(?:,|$)')


def a1111_read(text: str) -> tuple[str, str | None, dict[str, str]]:
    """(prompt, negative prompt, settings) as A1111's PNG-info parser splits `parameters`."""
    *lines, last = text.strip().split("\n")
    prompt, negative = [], None
    for line in lines:
        if line.startswith("Negative prompt:"):
            negative = line[len("Negative prompt:") :].strip()
        else:
            prompt.append(line)
    return "\n".join(prompt), negative, dict(A1111_SETTING.findall(last))


def test_an_edit_writes_the_parameters_chunk_beside_its_own_fields(image_path, tmp_path):
    import edit

    out = tmp_path / "out"
    cfg = compose_config(
        "edit",
        [
            "method=direct_inversion",
            "base_model=tiny",
            "device=cpu",
            f"image={image_path}",
            "target_prompt=a blue square",
            f"output_dir={out}",
            "method.num_inversion_steps=2",
            "method.num_inference_steps=2",
            "method.start=noise",
            "method.guidance_scale=[3]",
            "method.noise_lambda=[0.5]",
        ],
    )
    edit.edit(cfg)
    png = Image.open(out / "edit.png")
    assert png.text["prompt"] == "a blue square" and png.text["noise_lambda"] == "0.5"
    assert png.text["parameters"] == (
        "a blue square\nSteps: 2, CFG scale: 3, Seed: 0, Size: 32x32, Model: tiny-latent-seed0"
    )
    prompt, negative, settings = a1111_read(png.text["parameters"])
    assert (prompt, negative) == ("a blue square", None)
    assert settings == {
        "Steps": "2",
        "CFG scale": "3",
        "Seed": "0",
        "Size": "32x32",
        "Model": "tiny-latent-seed0",
    }
    assert "parameters" not in Image.open(out / "grid.png").text  # several results, no one prompt


def test_negative_prompt_sampler_and_quoting(tmp_path):
    image = torch.zeros(3, 16, 24)  # [3, H, W]: Size is width x height
    params = {
        "prompt": "a cat,\nin a hat",
        "negative_prompt": "blurry",
        "sampler": "ddpm",
        "num_timesteps": 100,
        "guidance_scale": 7.5,
        "seed": 3,
    }
    write_outputs(tmp_path, [EditResult(image, "x", params)], None, "", {"base_model": "m: v1, x"})
    text = Image.open(tmp_path / "edit.png").text["parameters"]
    assert text == (
        "a cat,\nin a hat\nNegative prompt: blurry\n"
        'Steps: 100, Sampler: DDPM, CFG scale: 7.5, Seed: 3, Size: 24x16, Model: "m: v1, x"'
    )
    prompt, negative, settings = a1111_read(text)
    assert (prompt, negative) == ("a cat,\nin a hat", "blurry")
    assert settings["Model"] == '"m: v1, x"' and settings["Sampler"] == "DDPM"


def test_only_what_the_metadata_has():
    assert a1111_parameters({"prompt": "a dog"}, (8, 8)) == "a dog\nSize: 8x8"
    assert a1111_parameters({"seed": 1, "base_model": "m"}, (8, 8)) is None
