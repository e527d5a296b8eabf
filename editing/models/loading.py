"""Load a `DiffusionModel` from a local diffusers folder, a hub id (via the local cache) or a
single checkpoint file, without ever downloading at run time unless the hub is reachable and the
user has not asked for offline mode.

Resolution order for `path`:
1. an existing directory: a diffusers-format folder (`model_index.json`, `unet/`, `text_encoder/`,
   `tokenizer/`, `scheduler/`, and `vae/` for latent models); with `text_encoder_2/` and
   `tokenizer_2/` too it is an SDXL folder (`editing.models.sdxl.SDXLModel`);
2. an existing file ending in `.safetensors` / `.ckpt`: a single original-layout checkpoint, loaded
   with diffusers' `from_single_file`; its component configs come from `config` (a local diffusers
   folder or a cached hub id), so nothing is fetched;
3. `owner/name`: a hub id, resolved through the local hub cache (`HF_HOME`); with
   `HF_HUB_OFFLINE=1` or no network a missing model is one clear error saying where to put it.

A pixel cascade's super-resolution stage (`sr_path`, e.g. DeepFloyd IF-II) is a folder or hub id
with `unet/`, `scheduler/` and optionally `image_noising_scheduler/`; it shares the base model's
text encoder (`load_sr_folder`, `save_sr_model`).
"""

from __future__ import annotations

import importlib
import json
import logging
import os
import re
from pathlib import Path

import torch

from editing.errors import UserInputError
from editing.models.diffusion_model import DiffusionModel
from editing.models.sdxl import SDXL_VAE_DTYPE, SDXLModel, force_zeros_flag

log = logging.getLogger(__name__)

_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")
WEIGHT_DTYPES = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}
"""The storage dtypes of `base_model.dtype` (frozen weights; trained tensors are always fp32)."""


def weights_dtype(name: str) -> torch.dtype:
    """The torch dtype of `base_model.dtype=name`; another name is refused in one line."""
    if name not in WEIGHT_DTYPES:
        raise UserInputError(f"base_model.dtype={name!r} is not one of {sorted(WEIGHT_DTYPES)}")
    return WEIGHT_DTYPES[name]


def _offline() -> bool:
    from huggingface_hub import constants

    return bool(constants.HF_HUB_OFFLINE)


LOADED_COMPONENTS = (
    "unet",
    "vae",
    "text_encoder",
    "tokenizer",
    "scheduler",
    "text_encoder_2",
    "tokenizer_2",
)
"""The folders of a diffusers repository that `load_from_folder` reads (no safety checker, no
feature extractor)."""
CONFIG_SUFFIXES = (".json", ".txt", ".model")


def _is_weight_file(name: str) -> bool:
    return name.endswith((".safetensors", ".bin", ".ckpt", ".msgpack", ".onnx", ".pb")) or (
        ".index" in name and name.endswith(".json")
    )


def hub_files_to_fetch(
    filenames: list[str], variant: str | None = None, configs_only: bool = False
) -> list[str]:
    """The files of a hub repository listing the loader uses, sorted.

    model_index.json and the config/tokenizer files of the loaded components; unless
    `configs_only`, their safetensors weights chosen by diffusers' own variant rule
    (`variant_compatible_siblings`: the `variant` files where a component has them, else its
    plain ones; never `non_ema` or another variant). Root-level single-file checkpoints, other
    components (safety_checker, feature_extractor) and pickle/ONNX/Flax weights are left out.
    """
    from diffusers.pipelines.pipeline_loading_utils import variant_compatible_siblings

    def used(name: str) -> bool:
        parts = name.split("/")
        return len(parts) == 2 and parts[0] in LOADED_COMPONENTS

    configs = [
        f
        for f in filenames
        if (f == "model_index.json" or used(f))
        and f.endswith(CONFIG_SUFFIXES)
        and not _is_weight_file(f)
    ]
    if configs_only:
        return sorted(configs)
    weights = [f for f in filenames if used(f) and _is_weight_file(f)]
    chosen, _ = variant_compatible_siblings(
        weights, variant=variant, ignore_patterns=["*.bin", "*.ckpt", "*.msgpack", "*.onnx", "*.pb"]
    )
    return sorted({*configs, *chosen})


def resolve_hub_id(
    repo_id: str,
    revision: str | None = None,
    configs_only: bool = False,
    variant: str | None = None,
) -> Path:
    """The local snapshot folder of a hub model, downloading only when online mode allows it.

    Online, only `hub_files_to_fetch` of the repository's listing is downloaded (about 5 GB of a
    Stable Diffusion repository's 20); offline, the cached snapshot is used as it is.
    `configs_only` fetches just the component configs and tokenizer files (what a single-file
    checkpoint needs from its model family), never the weights.
    """
    from huggingface_hub import HfApi, constants, snapshot_download

    try:
        if _offline():
            patterns = ["model_index.json", *(f"{c}/*" for c in LOADED_COMPONENTS)]
            return Path(
                snapshot_download(
                    repo_id, revision=revision, allow_patterns=patterns, local_files_only=True
                )
            )
        listing = HfApi().list_repo_files(repo_id, revision=revision)
        files = hub_files_to_fetch(listing, variant=variant, configs_only=configs_only)
        return Path(snapshot_download(repo_id, revision=revision, allow_patterns=files))
    except Exception as err:  # network down, not cached, gated, unknown repo: one message
        cache = constants.HF_HUB_CACHE
        raise UserInputError(
            f"base model {repo_id!r} is not in the local hub cache ({cache}) and could not be "
            f"downloaded ({type(err).__name__}). On a connected machine run "
            f"`huggingface-cli download {repo_id}` (same HF_HOME), or put a diffusers-format folder "
            f"on disk and pass base_model.path=/that/folder."
        ) from None


def _component_class(folder: Path, component: str, default: tuple[str, str]):
    """The class named for `component` in model_index.json (library, class), else `default`."""
    index = folder / "model_index.json"
    library, name = default
    if index.is_file():
        entry = json.loads(index.read_text()).get(component)
        if isinstance(entry, (list, tuple)) and len(entry) == 2 and entry[0] and entry[1]:
            library, name = entry
    return getattr(importlib.import_module(library), name)


def load_scheduler(folder: Path):
    """A DDIM scheduler with the checkpoint's betas, spacing and prediction type.

    Stable Diffusion folders ship a PNDM config; every method here uses DDIM maths with the same
    betas. Clipping and thresholding are turned off, as every public reference implementation does (docs/methods.md).
    """
    from diffusers import DDIMScheduler

    config = DDIMScheduler.load_config(folder, subfolder="scheduler")
    config.update(clip_sample=False, thresholding=False)
    return DDIMScheduler.from_config(config)


def _variant_of(component: Path, variant: str | None) -> str | None:
    """`variant` when the component folder has weights of that variant, else None (diffusers'
    rule: a component without variant files loads its plain weights)."""
    if variant is None or not any(component.glob(f"*.{variant}*.safetensors")):
        return None
    return variant


def is_sdxl_folder(folder: Path) -> bool:
    """True for a diffusers folder with SDXL's second text encoder and tokenizer."""
    return (folder / "text_encoder_2").is_dir() and (folder / "tokenizer_2").is_dir()


def _text_encoder(folder: Path, component: str, default: str, torch_dtype, variant):
    cls = _component_class(folder, component, ("transformers", default))
    return cls.from_pretrained(
        folder,
        subfolder=component,
        dtype=torch_dtype,
        variant=_variant_of(folder / component, variant),
    )


def load_vae(path: str, dtype: str = "float32", revision: str | None = None):
    """`base_model.vae=PATH`: a replacement `AutoencoderKL` from a VAE folder (config.json and
    weights at its root), a model folder with `vae/`, or a hub id of either; frozen."""
    from diffusers import AutoencoderKL

    folder = _folder(path, revision, "base_model.vae")
    sub = None if (folder / "config.json").is_file() else "vae"
    config = folder / (sub or "") / "config.json"
    kind = json.loads(config.read_text()).get("_class_name", "") if config.is_file() else ""
    if "Autoencoder" not in str(kind):
        raise UserInputError(
            f"base_model.vae={path!r} is neither a VAE folder (config.json of an autoencoder) nor "
            f"a model folder with vae/"
        )
    vae = AutoencoderKL.from_pretrained(folder, subfolder=sub, torch_dtype=weights_dtype(dtype))
    return vae.eval().requires_grad_(False)


def load_sdxl_folder(
    folder: Path,
    name: str,
    resolution: int | None = None,
    dtype: str = "float32",
    variant: str | None = None,
    vae_dtype: str = SDXL_VAE_DTYPE,
) -> SDXLModel:
    """Load an SDXL diffusers folder (two text encoders and tokenizers) into a frozen `SDXLModel`.

    The VAE is stored in `vae_dtype` (default fp32: SDXL 1.0's VAE overflows in fp16), the UNet
    and text encoders in `dtype`; `force_zeros_for_empty_prompt` comes from model_index.json
    (default true, as SDXL 1.0 base)."""
    from diffusers import UNet2DConditionModel

    missing = [
        c
        for c in (
            "unet",
            "vae",
            "text_encoder",
            "text_encoder_2",
            "tokenizer",
            "tokenizer_2",
            "scheduler",
        )
        if not (folder / c).is_dir()
    ]
    if missing:
        raise UserInputError(
            f"{folder} is not an SDXL model folder (missing {', '.join(missing)}/)"
        )
    torch_dtype = weights_dtype(dtype)
    unet = UNet2DConditionModel.from_pretrained(
        folder, subfolder="unet", torch_dtype=torch_dtype, variant=variant
    )
    vae_cls = _component_class(folder, "vae", ("diffusers", "AutoencoderKL"))
    vae = vae_cls.from_pretrained(
        folder, subfolder="vae", torch_dtype=weights_dtype(vae_dtype), variant=variant
    )
    text_encoder = _text_encoder(folder, "text_encoder", "CLIPTextModel", torch_dtype, variant)
    text_encoder_2 = _text_encoder(
        folder, "text_encoder_2", "CLIPTextModelWithProjection", torch_dtype, variant
    )
    tokenizers = [
        _component_class(folder, c, ("transformers", "CLIPTokenizer")).from_pretrained(
            folder, subfolder=c
        )
        for c in ("tokenizer", "tokenizer_2")
    ]
    return SDXLModel(
        unet,
        text_encoder,
        text_encoder_2,
        *tokenizers,
        load_scheduler(folder),
        vae,
        name=name,
        resolution=resolution,
        force_zeros_for_empty_prompt=force_zeros_flag(folder),
    ).freeze()


def load_from_folder(
    folder: Path,
    name: str,
    resolution: int | None = None,
    dtype: str = "float32",
    variant: str | None = None,
    vae_dtype: str | None = None,
) -> DiffusionModel:
    """Load the components of a diffusers-format folder into a frozen `DiffusionModel` (an
    `SDXLModel` for an SDXL folder). `vae_dtype` (default: `dtype`; fp32 on SDXL) stores the VAE."""
    from diffusers import AutoencoderKL, UNet2DConditionModel

    if is_sdxl_folder(folder):
        return load_sdxl_folder(
            folder, name, resolution, dtype, variant, vae_dtype or SDXL_VAE_DTYPE
        )

    missing = [
        c for c in ("unet", "text_encoder", "tokenizer", "scheduler") if not (folder / c).is_dir()
    ]
    if missing:
        raise UserInputError(
            f"{folder} is not a diffusers model folder (missing {', '.join(missing)}/). Give a folder "
            f"saved with save_pretrained, a hub id, or a single .safetensors checkpoint."
        )
    torch_dtype = weights_dtype(dtype)
    unet_cls = _component_class(folder, "unet", ("diffusers", "UNet2DConditionModel"))
    if not issubclass(unet_cls, UNet2DConditionModel):
        log.info("using %s as the denoiser", unet_cls.__name__)
    unet = unet_cls.from_pretrained(
        folder, subfolder="unet", torch_dtype=torch_dtype, variant=variant
    )
    vae = None
    if (folder / "vae").is_dir():
        vae_cls = _component_class(folder, "vae", ("diffusers", "AutoencoderKL"))
        vae = vae_cls.from_pretrained(
            folder, subfolder="vae", torch_dtype=weights_dtype(vae_dtype or dtype), variant=variant
        )
        assert isinstance(vae, AutoencoderKL) or hasattr(vae, "encode")
    te_cls = _component_class(folder, "text_encoder", ("transformers", "CLIPTextModel"))
    text_encoder = te_cls.from_pretrained(
        folder,
        subfolder="text_encoder",
        dtype=torch_dtype,
        variant=_variant_of(folder / "text_encoder", variant),
    )
    tok_cls = _component_class(folder, "tokenizer", ("transformers", "AutoTokenizer"))
    tokenizer = tok_cls.from_pretrained(folder, subfolder="tokenizer")
    uses_mask = type(text_encoder).__name__.startswith("T5")
    return DiffusionModel(
        unet,
        text_encoder,
        tokenizer,
        load_scheduler(folder),
        vae,
        name=name,
        resolution=resolution,
        text_attention_mask=uses_mask,
    ).freeze()


def load_single_file(
    file: Path,
    name: str,
    config: str | None,
    resolution: int | None = None,
    dtype: str = "float32",
    vae_dtype: str | None = None,
) -> DiffusionModel:
    """Load an original-layout Stable Diffusion checkpoint (`.safetensors` / `.ckpt`).

    `config` names the diffusers folder (or cached hub id) whose component configs describe the
    checkpoint, e.g. the SD 1.5 folder for SD 1.x fine-tunes, the SDXL 1.0 base folder for
    `sd_xl_base_1.0.safetensors` and SDXL fine-tunes (then an `SDXLModel`, its VAE in
    `vae_dtype`, default fp32); nothing is downloaded.
    """
    from diffusers import AutoencoderKL, StableDiffusionPipeline, StableDiffusionXLPipeline

    if not config:
        raise UserInputError(
            f"loading the single checkpoint file {file} needs the component configs of its model "
            f"family: pass base_model.config=/path/to/a/diffusers/folder (or a cached hub id such "
            f"as stable-diffusion-v1-5/stable-diffusion-v1-5)"
        )
    config_dir = (
        Path(config) if Path(config).is_dir() else resolve_hub_id(config, configs_only=True)
    )
    sdxl = is_sdxl_folder(config_dir)
    family = "an SDXL" if sdxl else "a Stable Diffusion"
    what = f"could not load {file} as {family} checkpoint with the configs of {config_dir}"
    try:
        if sdxl:  # the VAE read in its own dtype (fp32: not rounded through fp16 first)
            vae = AutoencoderKL.from_single_file(
                str(file),
                config=str(config_dir),
                subfolder="vae",
                local_files_only=True,
                torch_dtype=weights_dtype(vae_dtype or SDXL_VAE_DTYPE),
            )
            pipe = StableDiffusionXLPipeline.from_single_file(
                str(file),
                config=str(config_dir),
                local_files_only=True,
                torch_dtype=weights_dtype(dtype),
                vae=vae,
                add_watermarker=False,
            )
        else:
            pipe = StableDiffusionPipeline.from_single_file(
                str(file),
                config=str(config_dir),
                local_files_only=True,
                torch_dtype=weights_dtype(dtype),
                safety_checker=None,
                requires_safety_checker=False,
            )
    except UserInputError:
        raise
    except Exception as err:
        reason = str(err)
        if "meta tensor" in reason:  # diffusers leaves the weights a file lacks on the meta device
            reason = (
                "the file is missing weights of this architecture (an incomplete checkpoint, or "
                "one of another model family)"
            )
        raise UserInputError(f"{what}: {reason}") from None
    parts = (
        ("unet", "vae", "text_encoder", "text_encoder_2")
        if sdxl
        else ("unet", "vae", "text_encoder")
    )
    missing = [
        f"{part}.{key}"
        for part in parts
        for key, tensor in getattr(pipe, part).state_dict(keep_vars=True).items()
        if tensor.is_meta
    ]
    if missing:
        more = ", ..." if len(missing) > 5 else ""
        raise UserInputError(
            f"{what}: the file is missing {len(missing)} weight(s) of this architecture "
            f"({', '.join(missing[:5])}{more})"
        )
    if sdxl:
        return SDXLModel(
            pipe.unet,
            pipe.text_encoder,
            pipe.text_encoder_2,
            pipe.tokenizer,
            pipe.tokenizer_2,
            load_scheduler(config_dir),
            pipe.vae,
            name=name,
            resolution=resolution,
            force_zeros_for_empty_prompt=force_zeros_flag(config_dir),
        ).freeze()
    vae = pipe.vae.to(weights_dtype(vae_dtype)) if vae_dtype else pipe.vae
    return DiffusionModel(
        pipe.unet,
        pipe.text_encoder,
        pipe.tokenizer,
        load_scheduler(config_dir),
        vae,
        name=name,
        resolution=resolution,
    ).freeze()


def load_model(
    path: str,
    name: str | None = None,
    resolution: int | None = None,
    dtype: str = "float32",
    variant: str | None = None,
    revision: str | None = None,
    config: str | None = None,
    sr_path: str | None = None,
    sr_name: str | None = None,
    sr_noise_level: int | None = None,
    max_prompt_tokens: int | None = None,
    vae_tiling: bool = False,
    vae: str | None = None,
    vae_dtype: str | None = None,
) -> DiffusionModel:
    """Load a base model from a local folder, a single checkpoint file or a (cached) hub id.

    Args:
        path: diffusers folder, `.safetensors`/`.ckpt` file, or hub id `owner/name`.
        name: identity recorded in artifacts (default: the folder/file/hub name).
        resolution: working resolution in pixels (default: the UNet's sample size x VAE factor).
        dtype: weights dtype, "float32" | "float16" | "bfloat16".
        variant: diffusers weight variant (e.g. "fp16") for folders and hub ids.
        revision: hub revision.
        config: for single files, the diffusers folder or hub id with the component configs.
        sr_path: a super-resolution stage (folder or hub id) sharing this model's text encoder;
            sr_name (default: its folder/hub name) and sr_noise_level (default: the folder's, else
            250 as DeepFloyd IF-II) as for the base.
        max_prompt_tokens: the tokenizer's padded length (DeepFloyd IF pads T5 prompts to 77,
            its T5 tokenizer says 512).
        vae_tiling: encode and decode large images in overlapping tiles, and batches one image
            at a time (`set_vae_tiling`).
        vae: a replacement VAE (folder or hub id, `load_vae`), e.g. an fp16-safe SDXL VAE.
        vae_dtype: the VAE's storage dtype (default: `dtype`; float32 for SDXL, whose VAE
            overflows in float16).
    """
    model = _load_base(path, name, resolution, dtype, variant, revision, config, vae_dtype)
    if vae:
        model.vae = load_vae(
            vae,
            vae_dtype or (SDXL_VAE_DTYPE if model.conditioning_kind == "sdxl" else dtype),
            revision,
        )
        model.vae.to(model.device)
        model._identity = None  # the identity covers the VAE's config
    set_vae_tiling(model, vae_tiling)
    if max_prompt_tokens:
        model.tokenizer.model_max_length = int(max_prompt_tokens)
    if sr_path:
        folder = _folder(sr_path, revision, "base_model.sr_path")
        model.sr = load_sr_folder(
            folder, model, sr_name or _display_name(sr_path), dtype, variant, sr_noise_level
        )
    return model


def set_vae_tiling(model: DiffusionModel, enabled: bool) -> DiffusionModel:
    """`base_model.vae_tiling`: the VAE encodes/decodes images larger than its tile size
    (`vae.config.sample_size`, 512 px for SD 1.5) in overlapping tiles blended at the seams, and
    a batch one image at a time (diffusers' `enable_tiling` / `enable_slicing`). Memory then
    stays that of one tile however large the image. Each tile has its own normalisation
    statistics and attention, so an image larger than a tile comes out slightly different from an
    untiled pass (smaller images are unchanged). No effect on a pixel model."""
    vae = model.vae
    if vae is not None and hasattr(vae, "enable_tiling"):
        if enabled:
            vae.enable_tiling()
            vae.enable_slicing()
        else:
            vae.disable_tiling()
            vae.disable_slicing()
    return model


def _display_name(path: str) -> str:
    p = Path(os.path.expanduser(str(path)))
    return p.name if p.exists() else str(path)


def _folder(path: str, revision: str | None, what: str) -> Path:
    """A local folder or a cached hub id as a folder (for components that are never single files)."""
    p = Path(os.path.expanduser(str(path)))
    if p.is_dir():
        return p
    if _HUB_ID.match(str(path)) and not str(path).startswith((".", "/", "~")):
        return resolve_hub_id(str(path), revision)
    raise UserInputError(f"{what}={path!r} is not a folder or a hub id")


def _load_base(
    path, name, resolution, dtype, variant, revision, config, vae_dtype=None
) -> DiffusionModel:
    if not path:
        raise UserInputError(
            "base_model.path is empty: give a diffusers folder, a hub id or a file"
        )
    p = Path(os.path.expanduser(str(path)))
    if p.is_dir():
        return load_from_folder(p, name or p.name, resolution, dtype, variant, vae_dtype)
    if p.is_file():
        if p.suffix not in (".safetensors", ".ckpt"):
            raise UserInputError(f"{p} is a file but not a .safetensors/.ckpt checkpoint")
        return load_single_file(p, name or p.stem, config, resolution, dtype, vae_dtype)
    if _HUB_ID.match(str(path)) and not str(path).startswith((".", "/", "~")):
        folder = resolve_hub_id(str(path), revision, variant=variant)
        return load_from_folder(folder, name or str(path), resolution, dtype, variant, vae_dtype)
    raise UserInputError(
        f"base_model.path={path!r} does not exist (not a folder, a checkpoint file or a hub id)"
    )


def load_sr_folder(
    folder: Path,
    base: DiffusionModel,
    name: str,
    dtype: str = "float32",
    variant: str | None = None,
    noise_level: int | None = None,
):
    """A frozen `SuperResolutionModel` from a folder with unet/, scheduler/ (and optionally
    image_noising_scheduler/; default: the scheduler), checked against `base`'s text encoder."""
    from editing.models.cascade import SuperResolutionModel

    missing = [c for c in ("unet", "scheduler") if not (folder / c).is_dir()]
    if missing:
        raise UserInputError(
            f"{folder} is not a super-resolution model folder (missing {', '.join(missing)}/)"
        )
    unet_cls = _component_class(folder, "unet", ("diffusers", "UNet2DConditionModel"))
    unet = unet_cls.from_pretrained(
        folder, subfolder="unet", torch_dtype=weights_dtype(dtype), variant=variant
    )
    text = base.text_encoder.config
    width = getattr(text, "d_model", None) or text.hidden_size
    wants = unet.config.encoder_hid_dim or unet.config.cross_attention_dim
    if int(wants) != int(width):
        raise UserInputError(
            f"super-resolution UNet in {folder} takes text embeddings of width {wants}, the base "
            f"model's text encoder gives {width}: the SR stage must share the base's text encoder"
        )
    noise_scheduler = None
    if (folder / "image_noising_scheduler").is_dir():
        cls = _component_class(folder, "image_noising_scheduler", ("diffusers", "DDPMScheduler"))
        noise_scheduler = cls.from_pretrained(folder, subfolder="image_noising_scheduler")
    index = folder / "model_index.json"
    stored = json.loads(index.read_text()).get("sr_noise_level") if index.is_file() else None
    level = noise_level if noise_level is not None else (stored if stored is not None else 250)
    sr = SuperResolutionModel(
        unet, load_scheduler(folder), noise_scheduler, name=name, noise_level=int(level)
    )
    return sr.freeze()


def save_sr_model(sr, folder: str | Path) -> Path:
    """Write a `SuperResolutionModel` as a folder that `load_sr_folder` reads back."""
    import diffusers

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    index: dict[str, object] = {
        "_class_name": "SuperResolutionModel",
        "_diffusers_version": diffusers.__version__,
        "sr_noise_level": sr.noise_level,
    }
    parts = {"unet": sr.unet, "scheduler": sr.scheduler}
    parts["image_noising_scheduler"] = sr.noise_scheduler
    for component, obj in parts.items():
        obj.save_pretrained(folder / component)
        index[component] = [type(obj).__module__.split(".")[0], type(obj).__name__]
    (folder / "model_index.json").write_text(json.dumps(index, indent=2) + "\n")
    return folder


def _drop_source_path(config_file: Path) -> None:
    """Remove the folder a component was loaded from (`_name_or_path`, written by diffusers'
    `save_pretrained`) from its saved config: a shipped folder names no path of the machine
    that wrote it."""
    if not config_file.is_file():
        return
    config = json.loads(config_file.read_text())
    if config.pop("_name_or_path", None) is not None:
        config_file.write_text(json.dumps(config, indent=2, sort_keys=True) + "\n")


def save_model(model: DiffusionModel, folder: str | Path) -> Path:
    """Write `model` as a diffusers-format folder that `load_model(folder)` reads back."""
    import diffusers

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    parts = {
        "unet": model.unet,
        "text_encoder": model.text_encoder,
        "tokenizer": model.tokenizer,
        "scheduler": model.scheduler,
    }
    if model.vae is not None:
        parts["vae"] = model.vae
    index: dict[str, object] = {
        "_class_name": "DiffusionModel",
        "_diffusers_version": diffusers.__version__,
    }
    if model.conditioning_kind == "sdxl":
        parts.update(text_encoder_2=model.text_encoder_2, tokenizer_2=model.tokenizer_2)
        index["force_zeros_for_empty_prompt"] = model.force_zeros_for_empty_prompt
    for component, obj in parts.items():
        obj.save_pretrained(folder / component)
        _drop_source_path(folder / component / "config.json")
        library = type(obj).__module__.split(".")[0]
        index[component] = [library, type(obj).__name__]
    (folder / "model_index.json").write_text(json.dumps(index, indent=2) + "\n")
    return folder
