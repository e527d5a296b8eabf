"""A real single-file SDXL checkpoint (the layout of `sd_xl_base_1.0.safetensors`) loads through
`load_model(file, config=SDXL folder)` as an `SDXLModel`.

The tiny SDXL's weights are written in the original layout (`tests/ldm_layout.py`:
`to_sdxl_checkpoint`, OpenCLIP's layout for the second text encoder) and read back by diffusers'
`StableDiffusionXLPipeline.from_single_file` with the tiny model's folder as the configs.
"""

from __future__ import annotations

import pytest
import torch
from ldm_layout import SDXL_OPENCLIP_PREFIX, UNET_PREFIX, save_safetensors, to_sdxl_checkpoint

from editing.errors import UserInputError
from editing.models.loading import load_model, save_model
from editing.models.sdxl import SDXLModel

PARTS = ("unet", "vae", "text_encoder", "text_encoder_2")


@pytest.fixture(scope="module")
def source(tiny_sdxl_model, tmp_path_factory):
    model = tiny_sdxl_model
    root = tmp_path_factory.mktemp("sdxl-single")
    folder = save_model(model, root / "configs")
    parts = [getattr(model, p) for p in PARTS]
    file = save_safetensors(to_sdxl_checkpoint(*parts), root / "tiny-xl.safetensors")
    return model, folder, file, root


def test_the_file_has_the_sdxl_layout(source):
    from diffusers.loaders.single_file_utils import CHECKPOINT_KEY_NAMES

    _, _, file, _ = source
    from safetensors import safe_open

    with safe_open(str(file), framework="pt") as f:
        keys = set(f.keys())
        projection = f.get_tensor(SDXL_OPENCLIP_PREFIX + "text_projection")
    for marker in ("clip_sdxl", "open_clip_sdxl"):
        assert CHECKPOINT_KEY_NAMES[marker] in keys
    assert UNET_PREFIX + "label_emb.0.0.weight" in keys
    assert SDXL_OPENCLIP_PREFIX + "transformer.resblocks.1.attn.in_proj_weight" in keys
    assert tuple(projection.shape) == (32, 32)  # [hidden, projection], OpenCLIP's x @ proj


def test_single_file_loads_the_identical_model(source):
    model, folder, file, _ = source
    loaded = load_model(str(file), name=model.name, config=str(folder))
    assert isinstance(loaded, SDXLModel) and loaded.identity == model.identity
    for part in PARTS:
        got, want = getattr(loaded, part).state_dict(), getattr(model, part).state_dict()
        assert got.keys() == want.keys()
        assert all(torch.equal(got[k], want[k]) for k in want), part
    prompts = ["a red circle", ""]
    a, b = loaded.encode_condition(prompts), model.encode_condition(prompts)
    torch.testing.assert_close(a.tokens, b.tokens, rtol=0, atol=1e-6)
    torch.testing.assert_close(a.pooled, b.pooled, rtol=0, atol=1e-6)
    x = torch.randn(2, 4, 8, 8, generator=torch.Generator().manual_seed(0))
    torch.testing.assert_close(loaded.eps(x, 500, b), model.eps(x, 500, b), rtol=0, atol=1e-6)
    assert load_model(str(file), config=str(folder)).name == "tiny-xl"


def test_half_precision_keeps_the_vae_fp32(source):
    model, folder, file, _ = source
    loaded = load_model(str(file), config=str(folder), dtype="bfloat16")
    assert loaded.dtype == torch.bfloat16 and loaded.text_encoder_2.dtype == torch.bfloat16
    assert loaded.vae.dtype == torch.float32
    for key, value in model.vae.state_dict().items():  # read as fp32, never rounded
        assert torch.equal(loaded.vae.state_dict()[key], value), key


def test_a_file_without_the_second_text_encoder_is_a_clear_error(source):
    _, folder, file, root = source
    from safetensors.torch import load_file

    ckpt = {k: v for k, v in load_file(str(file)).items() if not k.startswith(SDXL_OPENCLIP_PREFIX)}
    broken = save_safetensors(ckpt, root / "no-openclip.safetensors")
    with pytest.raises(UserInputError, match=r"could not load .* as an SDXL checkpoint"):
        load_model(str(broken), config=str(folder))
