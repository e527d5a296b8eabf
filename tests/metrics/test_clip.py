"""CLIP through open_clip from local files: encoders, save/load round trips, errors, distance."""

from __future__ import annotations

import json
import math

import open_clip
import pytest
import torch
import torch.nn.functional as F

from editing.errors import UserInputError
from editing.models.clip import ClipModel, build_clip, load_clip, save_clip, spherical_distance

# A tiny open_clip architecture (image size 32, one-layer towers), like the project's demo CLIP.
TINY_CFG = {
    "embed_dim": 16,
    "vision_cfg": {"image_size": 32, "layers": 1, "width": 32, "patch_size": 8, "head_width": 16},
    "text_cfg": {"context_length": 16, "vocab_size": 49408, "width": 32, "heads": 2, "layers": 1},
}
TEXTS = ["a red circle at the top left", "a blue square"]


def _build(seed: int, cfg: dict = TINY_CFG, **kwargs) -> ClipModel:
    """A random tiny CLIP, frozen and in eval mode as `load_clip` returns one (frozen parameters
    pick the same attention kernels, so embeddings compare bit for bit)."""
    torch.manual_seed(seed)
    return build_clip(cfg, **kwargs).eval().requires_grad_(False)


@pytest.fixture(scope="module")
def clip() -> ClipModel:
    return _build(0)


def _images(batch: int = 2, h: int = 32, w: int = 32, seed: int = 0) -> torch.Tensor:
    return torch.rand(batch, 3, h, w, generator=torch.Generator().manual_seed(seed))


def _same_embeddings(a: ClipModel, b: ClipModel, x: torch.Tensor) -> None:
    with torch.no_grad():
        assert torch.equal(a.encode_image(x), b.encode_image(x))
        assert torch.equal(a.encode_text(TEXTS), b.encode_text(TEXTS))


# --- spherical distance (Blended Diffusion) ----------------------------------------------------


def test_spherical_distance_values():
    e = torch.eye(3)
    assert spherical_distance(e[0], e[0]).item() == 0.0
    assert spherical_distance(e[0], e[1]).item() == pytest.approx(math.pi**2 / 8, rel=1e-6)
    assert spherical_distance(e[0], -e[0]).item() == pytest.approx(math.pi**2 / 2, rel=1e-6)


def test_spherical_distance_is_half_the_squared_angle_and_broadcasts():
    g = torch.Generator().manual_seed(0)
    u, v = torch.randn(5, 8, generator=g), torch.randn(1, 8, generator=g)
    d = spherical_distance(3 * u, v)  # scale does not matter: embeddings are normalised first
    angle = torch.arccos(F.cosine_similarity(u, v, dim=-1))
    assert d.shape == (5,)
    torch.testing.assert_close(d, angle**2 / 2, rtol=1e-4, atol=1e-5)
    u.requires_grad_(True)
    spherical_distance(u, v).sum().backward()
    assert torch.isfinite(u.grad).all() and u.grad.abs().sum() > 0


# --- encoders ----------------------------------------------------------------------------------


def test_encode_image_is_normalised_deterministic_and_differentiable(clip):
    x = _images().requires_grad_(True)
    e = clip.encode_image(x)
    assert e.shape == (2, 16) and e.dtype == torch.float32
    torch.testing.assert_close(e.norm(dim=-1), torch.ones(2))
    e[:, 0].sum().backward()
    assert x.grad is not None and x.grad.abs().sum() > 0
    with torch.no_grad():
        assert torch.equal(clip.encode_image(x), clip.encode_image(x))


def test_preprocess_matches_open_clip_eval_transform_at_model_size(clip):
    x = _images()
    mean = torch.tensor(open_clip.OPENAI_DATASET_MEAN).view(1, 3, 1, 1)
    std = torch.tensor(open_clip.OPENAI_DATASET_STD).view(1, 3, 1, 1)
    torch.testing.assert_close(clip.preprocess(x), (x - mean) / std)


@pytest.mark.parametrize("resize_mode", ["shortest", "squash"])
@pytest.mark.parametrize("size", [(64, 48), (48, 64), (50, 50), (100, 37), (20, 40)])
def test_preprocess_equals_open_clip_eval_transform(resize_mode, size):
    """Our PIL-free, differentiable path gives exactly what open_clip's own eval transform gives
    on a tensor image (resize rule, antialiased bicubic, centre crop, normalisation)."""
    clip = build_clip(TINY_CFG, preprocess_cfg={"resize_mode": resize_mode})
    reference = open_clip.image_transform(32, is_train=False, resize_mode=resize_mode)
    x = _images(1, *size, seed=size[0])
    expected = reference(x[0])[None]
    assert clip.preprocess(x).shape == expected.shape == (1, 3, 32, 32)
    torch.testing.assert_close(clip.preprocess(x), expected, rtol=0, atol=1e-6)


def test_encode_text_is_normalised_and_deterministic(clip):
    t = clip.encode_text(TEXTS)
    assert t.shape == (2, 16)
    torch.testing.assert_close(t.norm(dim=-1), torch.ones(2))
    assert torch.equal(clip.encode_text(TEXTS[:1]), clip.encode_text(TEXTS[0]))
    with pytest.raises(ValueError, match="strings"):
        clip.encode_text([])


# --- save / load -------------------------------------------------------------------------------


def test_save_load_round_trip_gives_identical_embeddings(clip, tmp_path):
    save_clip(clip, tmp_path / "clip")
    config = json.loads((tmp_path / "clip" / "open_clip_config.json").read_text())
    assert config["model_cfg"] == TINY_CFG
    assert (tmp_path / "clip" / "open_clip_model.safetensors").is_file()
    loaded = load_clip(str(tmp_path / "clip"))
    _same_embeddings(clip, loaded, _images(h=40, w=36))
    assert not loaded.training and not any(p.requires_grad for p in loaded.parameters())
    x = _images().requires_grad_(True)
    loaded.encode_image(x).sum().backward()  # a frozen CLIP still guides: gradients reach x
    assert x.grad.abs().sum() > 0


def test_round_trip_keeps_preprocessing(tmp_path):
    pp = {"mean": (0.5, 0.5, 0.5), "std": (0.25, 0.25, 0.25), "resize_mode": "squash"}
    clip = _build(1, preprocess_cfg=pp)
    loaded = load_clip(save_clip(clip, tmp_path / "clip"))
    assert loaded.preprocess_cfg["resize_mode"] == "squash"
    assert tuple(loaded.preprocess_cfg["mean"]) == (0.5, 0.5, 0.5)
    _same_embeddings(clip, loaded, _images(h=48, w=32))


def test_round_trip_with_hf_tokenizer(tmp_path):
    from open_clip.tokenizer import HFTokenizer

    from demo_world.tokenizer_vocab import build_clip_tokenizer

    build_clip_tokenizer(model_max_length=16).save_pretrained(tmp_path / "tok")
    tokenizer = HFTokenizer(str(tmp_path / "tok"), context_length=16)
    cfg = json.loads(json.dumps(TINY_CFG))
    cfg["text_cfg"]["vocab_size"] = len(tokenizer.tokenizer)
    clip = _build(2, cfg, tokenizer=tokenizer)
    loaded = load_clip(save_clip(clip, tmp_path / "clip"))
    assert isinstance(loaded.tokenizer, HFTokenizer)
    assert torch.equal(loaded.tokenizer(TEXTS), tokenizer(TEXTS))
    _same_embeddings(clip, loaded, _images())


def test_folder_with_pytorch_bin_weights(clip, tmp_path):
    folder = save_clip(clip, tmp_path / "clip")
    (folder / "open_clip_model.safetensors").unlink()
    torch.save(clip.model.state_dict(), folder / "open_clip_pytorch_model.bin")
    _same_embeddings(clip, load_clip(folder), _images())


def test_single_checkpoint_file_with_architecture_name(clip, tmp_path):
    name = "TinyTestCLIP-metrics"
    (tmp_path / "configs").mkdir()
    (tmp_path / "configs" / f"{name}.json").write_text(json.dumps(TINY_CFG))
    open_clip.add_model_config(tmp_path / "configs")
    torch.save(clip.model.state_dict(), tmp_path / "tiny.pt")
    loaded = load_clip(tmp_path / "tiny.pt", name=name)
    _same_embeddings(clip, loaded, _images())


# --- errors ------------------------------------------------------------------------------------


@pytest.mark.parametrize("path", [None, "", "  "])
def test_no_clip_given_is_a_user_error(path):
    with pytest.raises(UserInputError, match=r"no CLIP model given.*clip\.path=.*demo CLIP"):
        load_clip(path)


def test_missing_or_incomplete_clip_is_a_user_error(clip, tmp_path):
    with pytest.raises(UserInputError, match="does not exist"):
        load_clip(tmp_path / "nowhere")
    (tmp_path / "empty").mkdir()
    with pytest.raises(UserInputError, match="no open_clip_config.json"):
        load_clip(tmp_path / "empty")
    folder = save_clip(clip, tmp_path / "clip")
    (folder / "open_clip_model.safetensors").unlink()
    with pytest.raises(UserInputError, match="no weights file"):
        load_clip(folder)


def test_single_file_needs_a_known_architecture(clip, tmp_path):
    torch.save(clip.model.state_dict(), tmp_path / "x.pt")
    with pytest.raises(UserInputError, match="clip.name=ViT-B-16"):
        load_clip(tmp_path / "x.pt")
    with pytest.raises(UserInputError, match="not an open_clip architecture"):
        load_clip(tmp_path / "x.pt", name="NoSuchNet-7")


def test_corrupt_weights_are_a_user_error(clip, tmp_path):
    folder = save_clip(clip, tmp_path / "clip")
    (folder / "open_clip_model.safetensors").write_bytes(b"not a safetensors file")
    with pytest.raises(UserInputError, match="could not load the CLIP"):
        load_clip(folder)
