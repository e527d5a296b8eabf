"""Blended Latent Diffusion: the latent background is the noised source at every step, pixel paste,
progressive shrinking, CLIP ranking, refusals, edit.py end to end."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from helpers import compose_config
from PIL import Image

from editing.diffusion.ddim import make_schedule
from editing.editors.blended_latent import BlendedLatentEditor
from editing.errors import UserInputError
from editing.io.edit_inputs import Inputs
from editing.io.images import from_uint8
from editing.io.masks import dilate_mask, downsample_mask
from editing.models.clip import build_clip, save_clip

TINY_CLIP = {
    "embed_dim": 16,
    "vision_cfg": {"image_size": 32, "layers": 1, "width": 32, "patch_size": 8, "head_width": 16},
    "text_cfg": {"context_length": 16, "vocab_size": 49408, "width": 32, "heads": 2, "layers": 1},
}
R = 32  # the tiny latent model: 32 px images, 8x8 latents


@pytest.fixture(scope="module")
def clip_dir(tmp_path_factory):
    torch.manual_seed(1)
    return str(save_clip(build_clip(TINY_CLIP), tmp_path_factory.mktemp("clip")))


def _pixels() -> np.ndarray:
    rgb = np.random.default_rng(1).integers(0, 255, (R, R, 3), dtype=np.uint8)
    rgb[8:24, 8:24] = (30, 30, 200)
    return rgb


def _mask() -> torch.Tensor:
    m = torch.zeros(1, 1, R, R)
    m[..., 8:24, 8:24] = 1
    return m


def _inputs(prompt="a red circle", mask=None) -> Inputs:
    return Inputs(
        image=from_uint8(_pixels()), mask=_mask() if mask is None else mask, target_prompt=prompt
    )


def _editor(**kw) -> BlendedLatentEditor:
    return BlendedLatentEditor(**{"num_inference_steps": 6, "num_candidates": 2, **kw})


def test_latent_outside_the_mask_is_the_noised_source_at_every_step(tiny_model):
    editor = _editor(strength=0.8)
    seen = []
    editor.callback = seen.append
    inputs = _inputs()
    results = editor(tiny_model, inputs)
    schedule = make_schedule(tiny_model.scheduler, 6)
    start = 1  # int(6 * (1 - 0.8))
    assert [s["step"] for s in seen] == list(range(start, 6))
    with torch.no_grad():
        z0 = tiny_model.encode_image(inputs.image.pixels)
    m_lat = downsample_mask(inputs.mask, (8, 8))
    for s in seen:
        keep = (s["mask"] == 0).expand_as(s["z"])
        assert torch.equal(s["z"][keep], s["z_bg"][keep])  # blended exactly
        i = s["step"]
        a = 1.0 if i == 5 else float(schedule.alphas_prev[i])
        assert s["a"] == a
        assert torch.equal(s["mask"], m_lat)
        if s["noise"] is None:  # after the last step: the clean source latent
            assert torch.equal(s["z_bg"], z0.expand_as(s["z_bg"]))
        else:
            expected = a**0.5 * z0 + (1 - a) ** 0.5 * s["noise"]
            torch.testing.assert_close(s["z_bg"], expected, rtol=1e-6, atol=1e-6)
            assert not torch.equal(s["noise"][0], s["noise"][1])  # per-candidate noise
        assert not torch.equal(s["z"][~keep], s["z_bg"][~keep])  # the inside is generated
    # pixel_paste: the decoded result equals the input outside the pixel mask, bitwise.
    keep = inputs.mask[0, 0] == 0
    for r in results:
        assert torch.equal(r.image[:, keep], inputs.image.pixels[0][:, keep])
        assert r.score is None


def test_without_pixel_paste_the_background_is_the_vae_reconstruction(tiny_model):
    inputs = _inputs()
    pasted = _editor(num_candidates=1)(tiny_model, inputs)[0].image
    raw = _editor(num_candidates=1, pixel_paste=False)(tiny_model, inputs)[0].image
    keep = inputs.mask[0, 0] > 0
    assert torch.equal(pasted[:, keep], raw[:, keep])
    assert not torch.equal(pasted, raw)


def test_progressive_shrinking_uses_dilated_masks_early(tiny_model):
    seen = []
    editor = _editor(num_inference_steps=8, strength=1.0, shrink_radius=2, shrink_until=0.5)
    editor.callback = seen.append
    editor(tiny_model, _inputs())
    m_lat = downsample_mask(_mask(), (8, 8))
    assert torch.equal(seen[0]["mask"], dilate_mask(m_lat, 2))
    assert torch.equal(seen[-1]["mask"], m_lat)
    sizes = [int(s["mask"].sum()) for s in seen]
    assert sizes == sorted(sizes, reverse=True) and sizes[0] > sizes[-1]


def test_a_mask_thinner_than_a_latent_cell_is_refused_or_kept_with_max(tiny_model):
    thin = torch.zeros(1, 1, R, R)
    thin[..., 9, 4:28] = 1  # a 1-pixel line between the sampled rows of the 4x downsampling
    with pytest.raises(UserInputError, match="vanishes at the latent resolution"):
        _editor()(tiny_model, _inputs(mask=thin))
    results = _editor(mask_downsample="max")(tiny_model, _inputs(mask=thin))
    keep = thin[0, 0] == 0
    assert torch.equal(results[0].image[:, keep], from_uint8(_pixels()).pixels[0][:, keep])


def test_clip_ranking_sorts_by_the_reported_score(tiny_model, clip_dir):
    results = _editor(num_candidates=3, batch_size=2, rank_with_clip=True, clip_path=clip_dir)(
        tiny_model, _inputs()
    )
    scores = [r.score for r in results]
    assert None not in scores and scores == sorted(scores)
    from editing.editors.blended_guidance import masked_clip_distance
    from editing.models.clip import load_clip

    clip = load_clip(clip_dir)
    images = torch.stack([r.image for r in results])
    recomputed = masked_clip_distance(clip, images, _mask(), clip.encode_text(["a red circle"]))
    torch.testing.assert_close(torch.tensor(scores), recomputed, rtol=1e-5, atol=1e-6)


def test_refusals(tiny_model):
    from demo_world.tiny import build_tiny_model

    with pytest.raises(UserInputError, match="use method=blended"):
        _editor()(build_tiny_model(latent=False, resolution=16), _inputs())
    with pytest.raises(UserInputError, match="needs mask=PATH"):
        _editor()(tiny_model, Inputs(image=from_uint8(_pixels()), target_prompt="x"))
    with pytest.raises(UserInputError, match="strength"):
        BlendedLatentEditor(strength=0.0)
    with pytest.raises(UserInputError, match="no CLIP model given"):
        _editor(rank_with_clip=True)(tiny_model, _inputs())


def test_edit_py_end_to_end(tmp_path, clip_dir):
    from editing_app.commands.edit import edit

    Image.fromarray(_pixels()).save(tmp_path / "image.png")
    Image.fromarray((_mask()[0, 0].numpy() * 255).astype(np.uint8)).save(tmp_path / "mask.png")
    cfg = compose_config(
        "edit",
        [
            "method=blended_latent",
            "base_model=tiny",
            f"image={tmp_path / 'image.png'}",
            f"mask={tmp_path / 'mask.png'}",
            "target_prompt=a red circle",
            f"output_dir={tmp_path / 'out'}",
            "device=cpu",
            "method.num_inference_steps=4",
            "method.num_candidates=2",
            "method.rank_with_clip=true",
            f"++clip.path={clip_dir}",
        ],
    )
    out = edit(cfg)
    samples = sorted((out.parent / "samples").iterdir())
    assert len(samples) == 2 and (out.parent / "grid.png").is_file()
    scores = [json.loads(Image.open(p).text["score"]) for p in samples]
    assert scores == sorted(scores)
    keep = _mask()[0, 0].numpy() == 0
    assert np.array_equal(np.asarray(Image.open(out))[keep], _pixels()[keep])
    # The pixel model is refused through edit.py too, before anything is written.
    cfg.base_model = compose_config("edit", ["base_model=tiny_pixel", "output_dir=x"]).base_model
    cfg.output_dir = str(tmp_path / "out2")
    with pytest.raises(UserInputError, match="use method=blended"):
        edit(cfg)
    assert not (tmp_path / "out2").exists()
