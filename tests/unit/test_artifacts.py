"""Artifacts: bit-exact round trip, atomic writes, refusal of mismatches."""

from __future__ import annotations

import json
import os

import pytest
import torch

from editing.errors import UserInputError
from editing.io.artifacts import load_artifact, make_metadata, model_metadata, save_artifact


def _tensors():
    g = torch.Generator().manual_seed(0)
    return {
        "e_opt": torch.randn(1, 77, 32, generator=g),
        "half": torch.randn(3, generator=g).half(),
    }


def test_round_trip_is_bit_exact(tmp_path, tiny_model):
    meta = make_metadata(
        "imagic_embed", tiny_model, hparams={"lr": 2e-3}, image_sha256="abc", target_prompt="a cat"
    )
    path = save_artifact(tmp_path / "a.safetensors", _tensors(), meta)
    art = load_artifact(
        path, "imagic_embed", expect={**model_metadata(tiny_model), "image_sha256": "abc"}
    )
    for key, value in _tensors().items():
        assert art[key].dtype == value.dtype and torch.equal(art[key], value)
    assert art.metadata == meta
    assert art.hparams == {"lr": 2e-3}
    for key in (
        "format_version",
        "stage",
        "base_model",
        "base_model_config_hash",
        "resolution",
        "versions",
    ):
        assert key in art.metadata
    assert not [p for p in os.listdir(tmp_path) if p.endswith(".tmp")]


@pytest.mark.parametrize(
    "error", [OSError(28, "No space left on device"), KeyboardInterrupt, SystemExit]
)
@pytest.mark.parametrize("where", ["write", "fsync", "rename"])
def test_write_is_atomic(tmp_path, tiny_model, monkeypatch, error, where):
    import editing.io.atomic as atomic

    path = tmp_path / "a.safetensors"
    meta = make_metadata("imagic_embed", tiny_model)
    save_artifact(path, _tensors(), meta)
    before = path.read_bytes()

    def crash(*args, **kwargs):
        raise error

    if where == "write":
        import editing.io.artifacts as artifacts

        class HalfWrite:
            """The artifact's file: half of the first write reaches the disk, then it is full."""

            def __init__(self, file, mode):
                self.f = open(file, mode)  # noqa: SIM115

            def __enter__(self):
                return self

            def __exit__(self, *exc):
                self.f.close()

            def write(self, data):
                self.f.write(bytes(data[: len(data) // 2]))
                raise error

        monkeypatch.setattr(artifacts, "open", HalfWrite, raising=False)
    elif where == "fsync":
        monkeypatch.setattr(atomic.os, "fsync", crash)
    else:
        monkeypatch.setattr(atomic.os, "replace", crash)
    with pytest.raises(type(error) if isinstance(error, BaseException) else error):
        save_artifact(path, {"x": torch.zeros(2)}, meta)
    monkeypatch.undo()
    assert path.read_bytes() == before  # the old artifact is intact
    assert os.listdir(tmp_path) == ["a.safetensors"]  # no temporary file left


def test_header_is_reproducible_and_sorted(tmp_path, tiny_model):
    """safetensors serialises metadata from a hash map (another order each process); the header
    is rewritten sorted, and the file still reads with safe_open."""
    from safetensors import safe_open

    meta = make_metadata("imagic_embed", tiny_model, zeta="1", alpha="2", target_prompt="é")
    a = save_artifact(tmp_path / "a.safetensors", _tensors(), meta).read_bytes()
    b = save_artifact(tmp_path / "b.safetensors", _tensors(), dict(reversed(meta.items())))
    assert b.read_bytes() == a
    with safe_open(str(b), framework="pt") as f:
        assert f.metadata() == meta
        assert torch.equal(f.get_tensor("e_opt"), _tensors()["e_opt"])
    n = int.from_bytes(a[:8], "little")
    assert n % 8 == 0
    header = json.loads(a[8 : 8 + n])
    assert list(header) == ["__metadata__", "e_opt", "half"]
    assert list(header["__metadata__"]) == sorted(meta)


def test_mismatches_are_refused_with_what_differs(tmp_path, tiny_model):
    meta = make_metadata("imagic_embed", tiny_model, image_sha256="abc")
    path = save_artifact(tmp_path / "a.safetensors", _tensors(), meta)
    with pytest.raises(UserInputError, match="'imagic_embed' artifact, not 'null_text'"):
        load_artifact(path, "null_text")
    with pytest.raises(
        UserInputError, match=r"base model: artifact has 'tiny-latent-seed0', this run has 'demo'"
    ):
        load_artifact(path, "imagic_embed", expect={"base_model": "demo"})
    with pytest.raises(
        UserInputError, match=r"resolution: artifact has '32', this run has '64'.*image_sha256"
    ):
        load_artifact(path, "imagic_embed", expect={"resolution": 64, "image_sha256": "zzz"})


def test_missing_and_corrupt_files(tmp_path):
    with pytest.raises(UserInputError, match="no imagic_embed artifact at .*: run it first"):
        load_artifact(tmp_path / "none.safetensors", "imagic_embed", hint="run it first")
    bad = tmp_path / "bad.safetensors"
    bad.write_bytes(b"not a safetensors file at all")
    with pytest.raises(UserInputError, match="not a readable safetensors artifact"):
        load_artifact(bad, "imagic_embed")
