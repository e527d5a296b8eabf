"""DiffusionModel and the real loading path (save_pretrained tiny components, load them back)."""

from __future__ import annotations

import pytest
import torch

from demo_world.tiny import build_tiny_model
from editing.diffusion.ddim import add_noise, eps_from_v
from editing.errors import UserInputError
from editing.models.loading import load_model, save_model


def _probe(model):
    g = torch.Generator().manual_seed(0)
    x = torch.randn(2, *model.latent_shape, generator=g)
    emb = model.encode_prompt(["a red circle", "a photo of a cat"])
    return x, emb


@pytest.mark.parametrize("prediction_type", ["epsilon", "v_prediction"])
def test_save_and_load_folder_round_trip(tmp_path, prediction_type):
    model = build_tiny_model(prediction_type=prediction_type)
    save_model(model, tmp_path / "m")
    loaded = load_model(str(tmp_path / "m"), name=model.name)
    assert loaded.identity == model.identity
    assert loaded.prediction_type == prediction_type
    x, emb = _probe(model)
    assert torch.equal(loaded.encode_prompt(["a red circle", "a photo of a cat"]), emb)
    torch.testing.assert_close(loaded.eps(x, 500, emb), model.eps(x, 500, emb), rtol=0, atol=0)
    img = torch.rand(1, 3, 32, 32) * 2 - 1
    torch.testing.assert_close(loaded.encode_image(img), model.encode_image(img), rtol=0, atol=0)


def test_pixel_model_round_trip(tmp_path):
    model = build_tiny_model(latent=False, resolution=16)
    assert model.vae is None and model.latent_shape == (3, 16, 16)
    save_model(model, tmp_path / "px")
    loaded = load_model(str(tmp_path / "px"), name=model.name)
    assert loaded.vae is None and loaded.identity == model.identity
    x = torch.rand(1, 3, 16, 16)
    assert torch.equal(loaded.encode_image(x), x) and torch.equal(loaded.decode(x), x)


def test_v_prediction_eps_is_recovered(tiny_v_model):
    m = tiny_v_model
    x, emb = _probe(m)
    t = torch.tensor([100, 900])
    v = m.predict(x, t, emb)
    torch.testing.assert_close(m.eps(x, t, emb), eps_from_v(v, x, m.alphas_cumprod[t]))
    # and the training target of a v model is v, so eps and x0 are consistent with it
    x0, noise = torch.randn_like(x), torch.randn_like(x)
    target = m.training_target(x0, noise, t)
    x_t = add_noise(x0, noise, m.alphas_cumprod[t])
    torch.testing.assert_close(
        eps_from_v(target, x_t, m.alphas_cumprod[t]), noise, rtol=1e-4, atol=1e-4
    )


def test_latent_encoding_uses_posterior_mean_and_scaling_factor(tiny_model):
    m = tiny_model
    img = torch.rand(1, 3, 32, 32) * 2 - 1
    z1, z2 = m.encode_image(img), m.encode_image(img)
    assert torch.equal(z1, z2)  # deterministic: the mean, never a sample
    mean = m.vae.encode(img).latent_dist.mean
    torch.testing.assert_close(z1, mean * m.vae.config.scaling_factor)


def test_identity_distinguishes_models():
    a, b = build_tiny_model(seed=0), build_tiny_model(seed=1)
    assert a.identity.name != b.identity.name and a.identity.weights_hash != b.identity.weights_hash
    assert build_tiny_model(seed=0).identity == a.identity


def test_overlong_prompt_is_refused(tiny_model):
    with pytest.raises(UserInputError, match=r"target_prompt .* tokens long; .* at most 77"):
        tiny_model.encode_prompt(["cat " * 100], "target_prompt")


def test_missing_sources_give_one_clear_error(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    import huggingface_hub.constants as hc

    monkeypatch.setattr(hc, "HF_HUB_OFFLINE", True)
    monkeypatch.setattr(hc, "HF_HUB_CACHE", str(tmp_path / "hub"))
    with pytest.raises(
        UserInputError, match=r"not in the local hub cache .* base_model.path=/that/folder"
    ):
        load_model("someone/not-a-model")
    with pytest.raises(UserInputError, match="does not exist"):
        load_model(str(tmp_path / "nothing-here"))
    (tmp_path / "empty").mkdir()
    with pytest.raises(UserInputError, match="not a diffusers model folder"):
        load_model(str(tmp_path / "empty"))
    (tmp_path / "w.safetensors").write_bytes(b"")
    with pytest.raises(UserInputError, match="needs the component configs"):
        load_model(str(tmp_path / "w.safetensors"))


def test_hub_id_resolves_through_the_local_cache(tmp_path, monkeypatch):
    # A model already in the hub cache loads offline by its hub id.
    import huggingface_hub.constants as hc

    cache = tmp_path / "hub"
    snapshot = (
        cache / "models--owner--tiny" / "snapshots" / "0123456789abcdef0123456789abcdef01234567"
    )
    model = build_tiny_model()
    save_model(model, snapshot)
    (cache / "models--owner--tiny" / "refs").mkdir(parents=True)
    (cache / "models--owner--tiny" / "refs" / "main").write_text(snapshot.name)
    monkeypatch.setattr(hc, "HF_HUB_OFFLINE", True)
    monkeypatch.setattr(hc, "HF_HUB_CACHE", str(cache))
    import huggingface_hub._snapshot_download as sd

    if hasattr(sd, "HF_HUB_CACHE"):
        monkeypatch.setattr(sd, "HF_HUB_CACHE", str(cache))
    loaded = load_model("owner/tiny", name=model.name)
    assert loaded.identity == model.identity
