"""Prompt-to-Prompt editing of a real image from an inversion (Mokady et al. 2023, Sec. 3.3).

The source branch starts from the inversion's z_T with its per-step unconditional embeddings; the
edited branches start from the same z_T and have their attention rewritten by a Prompt-to-Prompt
controller (Replace for word swaps, Refine for added words, optional Reweight and LocalBlend).
Several target prompts run in one batch with the source, so the inversion and the source branch are
computed once for all of them. Inversions:
- `null_text`: the artifact of `train.py stage=null_text` (z*_T and the optimised null embeddings);
- `ddim`: plain DDIM inversion (w = 1, source caption) with the "" embedding: the paper's lower bound;
- `negative_prompt`: DDIM inversion with the source-prompt embedding as the null embedding at every
  step (Miyake et al. 2023), optimisation-free.
The edited branches' null embedding (`edit_null`): `shared`, the inversion's, as the source branch
(reference code: the optimised nulls serve every branch), or `empty`, the embedding of "" at every
step: the optimised nulls then only keep the source branch on the image's trajectory, and the
edits are guided as from a plain DDIM inversion (the source and target branches kept apart, as Ju
et al. 2023 argue for). On the demo model the shared nulls deform the edit (docs/methods.md).
On a pixel cascade the edit runs on the base stage and every result is then super-resolved with its
own prompt by the pretrained SR stage (`editing.editors.apply.apply_editor`). On SDXL every
condition carries its pooled embedding (the null-text artifact's per-step null pooled embeddings
beside its null tokens; the "" and source conditions of the other inversions), the maps are those of
SDXL's cross-attention layers (`editing.attention.site`) and words are found with the first
tokenizer, refused when the second splits a prompt otherwise (`check_same_tokens`). Models whose
attention is not plain softmax attention (DeepFloyd IF's joint self/cross "added KV" attention) are
refused: Prompt-to-Prompt's maps are not defined there.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any, ClassVar

import torch
from torch import Tensor

from editing.attention import AttentionRefine, AttentionReplace, AttentionReweight, LocalBlend
from editing.attention.blend import MAPS
from editing.attention.processor import STANDARD_PROCESSORS
from editing.attention.site import PLACES, cross_attention_scales
from editing.attention.words import check_same_tokens
from editing.diffusion.conditioning import POOLED_SUFFIX, embedding, text_embedding
from editing.diffusion.ddim import Inversion, make_schedule
from editing.editors import settings
from editing.editors.p2p_sampling import p2p_sample
from editing.errors import UserInputError, require_text
from editing.inversion.ddim_inversion import invert
from editing.io.artifacts import (
    check_weights,
    image_metadata,
    load_artifact,
    model_metadata,
    working_size,
)
from editing.io.edit_inputs import Inputs
from editing.io.outputs import EditResult

INVERSIONS = ("null_text", "ddim", "negative_prompt")
EDIT_NULLS = ("shared", "empty")
"""The edited branches' unconditional embedding: the inversion's (the source's), or that of ""."""


def changed_words(source: str, target: str) -> tuple[list[str], list[str]]:
    """Words that differ between two prompts: position-wise for equal word counts (a swap), else
    the words only one side has (additions/removals)."""
    s, t = source.split(), target.split()
    if len(s) == len(t):
        pairs = [(a, b) for a, b in zip(s, t) if a != b]
        return [a for a, _ in pairs], [b for _, b in pairs]
    return [w for w in s if w not in t], [w for w in t if w not in s]


def same_token_count(tokenizer, a: str, b: str) -> bool:
    return len(tokenizer(a).input_ids) == len(tokenizer(b).input_ids)


@dataclass(eq=False)
class NullTextP2PEditor:
    """`python edit.py method=null_text_p2p checkpoint_dir=D target_prompt=T output_dir=O`.

    The fields are the settings of configs/method/null_text_p2p.yaml; `__post_init__` checks and
    normalises them (and gathers the LocalBlend ones in `blend`). Results: one per target prompt
    (in the given order), then the reconstruction (source prompt only) when `reconstruction` is on.
    """

    # The train.py artifacts this method edits from (`checkpoint_dir=D`); not a setting.
    artifacts: ClassVar[tuple[str, ...]] = ("null_text",)

    # On a cascade, results are super-resolved afterwards (editing.editors.apply); not a setting.
    cascade_super_resolution: ClassVar[bool] = True
    # Runs on SDXL: its conditions carry the pooled embedding (editing.editors.apply).
    supports_sdxl: ClassVar[bool] = True

    # null_text (the artifact of stage=null_text, paper) | ddim (the paper's lower bound) |
    # negative_prompt (Miyake et al. 2023).
    inversion: str = "null_text"
    # Several edits in one run (None: [target_prompt]); one inversion serves all (project choice).
    target_prompts: Sequence[str] | None = None
    # auto: replace when the token counts match, else refine | replace | refine (project choice).
    edit: str = "auto"
    # Fraction of steps with the source's cross-attention, or {default_: 0.8, word: 0.4}
    # (reference notebook 0.8).
    cross_replace_steps: float | Mapping[str, float] = 0.8
    # Fraction of steps with the source's self-attention (reference notebook 0.4-0.7).
    self_replace_steps: float = 0.4
    # Self-attention replaced only on maps up to this fraction of the latent side (reference:
    # 16 of 32 px maps).
    self_replace_max_scale: float = 0.5
    # None | "auto" (the words that differ) | per prompt, source first: [[red], [blue]] (reference
    # LocalBlend; auto is a project choice).
    blend_words: Any = None
    # LocalBlend maps' side as a fraction of the latent side (reference: 16 of 64).
    blend_resolution: float = 0.25
    # LocalBlend's threshold and the fraction of steps before it starts (reference 0.3, 0.2).
    blend_threshold: float = 0.3
    blend_start: float = 0.2
    # Where LocalBlend collects its maps (reference: down, up).
    blend_places: Sequence[str] = ("down", "up")
    # Which maps LocalBlend reads: "edited" (after the attention edit: inside the Replace window
    # the source's, reference) | "own" (the edited branch's own, before the edit: inside the
    # window the union with the new words' region).
    blend_maps: str = "edited"
    # {word: factor} attention reweighting on top of the edit (reference AttentionReweight).
    equalizer: Mapping[str, float] | None = None
    # The edited branches' null embedding: shared (the inversion's, as the source's: the
    # optimised per-step nulls, the source embedding for negative_prompt; reference) | empty (the
    # embedding of "" at every step; project choice, see the module docstring).
    edit_null: str = "shared"
    # For inversion=ddim|negative_prompt (null_text uses its artifact's) (reference 7.5, 50).
    guidance_scale: float = 7.5
    num_inference_steps: int = 50
    # Also output the source-prompt reconstruction (project choice).
    reconstruction: bool = True
    # The method's name in results and tables.
    name: str = "null_text_p2p"

    def __post_init__(self) -> None:
        self.inversion = settings.choice(self.inversion, "inversion", INVERSIONS)
        self.edit = settings.choice(self.edit, "edit", ("auto", "replace", "refine"))
        self.edit_null = settings.choice(self.edit_null, "edit_null", EDIT_NULLS)
        self.target_prompts = list(self.target_prompts) if self.target_prompts else None
        self.cross_replace_steps = (
            dict(self.cross_replace_steps)
            if isinstance(self.cross_replace_steps, Mapping)
            else settings.number(self.cross_replace_steps, "cross_replace_steps", 0.0, 1.0)
        )
        self.self_replace_steps = settings.number(
            self.self_replace_steps, "self_replace_steps", 0.0, 1.0
        )
        self.self_replace_max_scale = settings.number(
            self.self_replace_max_scale, "self_replace_max_scale", 0.0, 1.0
        )
        self.blend = {
            "resolution": settings.number(
                self.blend_resolution, "blend_resolution", 0.0, 1.0, open_low=True
            ),
            "threshold": settings.number(self.blend_threshold, "blend_threshold", 0.0, 1.0),
            "start": settings.number(self.blend_start, "blend_start", 0.0, 1.0),
            "places": tuple(settings.choices(self.blend_places, "blend_places", PLACES)),
            "maps": settings.choice(self.blend_maps, "blend_maps", MAPS),
        }
        self.blend_maps = self.blend["maps"]
        self.equalizer = dict(self.equalizer) if self.equalizer else None
        self.guidance_scale = settings.number(self.guidance_scale, "guidance_scale", 0.0)
        self.num_inference_steps = settings.integer(
            self.num_inference_steps, "num_inference_steps", 1, 1000
        )
        self.reconstruction = settings.flag(self.reconstruction, "reconstruction")

    # ----------------------------------------------------------------------------- inversion
    def invert(self, model, inputs: Inputs) -> Inversion:
        """The inversion this edit starts from (artifact or computed now)."""
        if self.inversion == "null_text":
            if inputs.checkpoint_dir is None:
                raise UserInputError(
                    "method=null_text_p2p with inversion=null_text needs checkpoint_dir=D (the output_dir of `train.py stage=null_text`)"
                )
            expect = model_metadata(model)
            if inputs.image is not None:
                expect.update(image_metadata(inputs.image))
            if inputs.source_prompt:
                expect["source_prompt"] = inputs.source_prompt
            artifact = load_artifact(
                inputs.checkpoint_dir / "null_text.safetensors",
                "null_text",
                expect=expect,
                device=model.device,
                hint=f"run `python train.py stage=null_text image=IMG source_prompt=S output_dir={inputs.checkpoint_dir}` first",
                loaded=inputs.artifacts,
            )
            check_weights(artifact, model)
            steps = int(artifact.number("num_inference_steps", int))
            empty = model.encode_condition([""])
            shapes = {
                "z_T": (1, *model.sample_shape(working_size(artifact.metadata, model))),
                "null_embeddings": (None, *empty.tokens.shape[1:]),  # [N, L, D]
                "timesteps": (steps,),
            }
            names = ["null_embeddings"]
            if empty.pooled is not None:  # SDXL: the null pooled embeddings [N, P]
                names.append("null_embeddings" + POOLED_SUFFIX)
                shapes[names[-1]] = (None, *empty.pooled.shape[1:])
            artifact.require(shapes)
            for name in names:
                if artifact[name].shape[0] not in (1, steps) or (
                    artifact[name].shape[0] != artifact[names[0]].shape[0]
                ):
                    raise UserInputError(
                        f"{artifact.path} holds {artifact[name].shape[0]} {name} for {steps} "
                        f"timesteps: re-run `train.py stage=null_text`"
                    )
            if artifact.metadata.get("steps_done") != str(steps):
                raise UserInputError(
                    f"{artifact.path} is an unfinished null-text inversion "
                    f"({artifact.metadata.get('steps_done', '?')} of {steps} timesteps): rerun "
                    f"`train.py stage=null_text ... resume=true` to finish it"
                )
            schedule = make_schedule(model.scheduler, steps).to(model.device)
            if not torch.equal(schedule.timesteps.cpu(), artifact["timesteps"].cpu()):
                raise UserInputError(
                    f"{artifact.path} was made with other DDIM timesteps than this model's scheduler gives"
                )
            return Inversion(
                x_T=artifact["z_T"],
                schedule=schedule,
                uncond=embedding(*(artifact[name] for name in names)),
                prompt=artifact.metadata["source_prompt"],
                guidance_scale=float(artifact.number("guidance_scale")),
            )
        if inputs.image is None:
            raise UserInputError(
                f"method.inversion={self.inversion} inverts at edit time: it needs image=PATH"
            )
        source = require_text(inputs.source_prompt, "source_prompt", allow_empty=True)
        schedule = make_schedule(model.scheduler, self.num_inference_steps).to(model.device)
        cond = text_embedding(model, source, "source_prompt")
        z0 = model.encode_image(inputs.image.pixels.to(model.device))
        inversion = invert(model, z0, cond, schedule, source, progress=True)
        uncond = cond if self.inversion == "negative_prompt" else text_embedding(model, "")
        return replace(inversion, uncond=uncond, guidance_scale=self.guidance_scale)

    # ---------------------------------------------------------------------------- controllers
    def controller(self, model, prompts: list[str]):
        """The Prompt-to-Prompt controller for [source, *edits] (all of one kind); token
        positions from the model's first tokenizer (`check_same_tokens`: the same on SDXL's)."""
        check_same_tokens(model.tokenizers, prompts)
        tokenizer = model.tokenizer
        local_blend = None
        if self.blend_words:
            if self.blend_words == "auto":
                words = [changed_words(prompts[0], p) for p in prompts[1:]]
                source_words = sorted({w for src, _ in words for w in src})
                entries = [source_words or None] + [tgt or None for _, tgt in words]
            else:
                entries = list(self.blend_words)
            local_blend = LocalBlend(prompts, tokenizer, entries, **self.blend)
        kwargs = {
            "cross_replace_steps": self.cross_replace_steps,
            "self_replace_steps": self.self_replace_steps,
            "self_replace_max_scale": self.self_replace_max_scale,
        }
        replace = all(same_token_count(tokenizer, prompts[0], p) for p in prompts[1:])
        if self.edit == "replace" or (self.edit == "auto" and replace):
            base = AttentionReplace(prompts, tokenizer, local_blend=local_blend, **kwargs)
        else:
            base = AttentionRefine(prompts, tokenizer, local_blend=local_blend, **kwargs)
        if self.equalizer:
            return AttentionReweight(
                prompts, tokenizer, self.equalizer, base=base, local_blend=local_blend, **kwargs
            )
        return base

    def check_blend_layers(self, model) -> None:
        """Refuse, before any inversion, LocalBlend maps of a side that no cross-attention layer in
        `blend_places` has (e.g. blend_resolution=0.25 on tiny_sdxl, whose cross-attention maps
        are all 1/2 of the latent side; SDXL 1.0 has 1/2 and 1/4)."""
        scales = cross_attention_scales(model.unet)
        if not self.blend_words or scales is None:
            return
        wanted, places = self.blend["resolution"], self.blend["places"]
        if any(math.isclose(wanted, s) for p in places for s in scales[p]):
            return
        have = "; ".join(f"{p}: {', '.join(f'{s:g}' for s in scales[p]) or 'none'}" for p in PLACES)
        raise UserInputError(
            f"method.blend_resolution={wanted:g} matches no cross-attention layer in "
            f"blend_places={list(places)} of base model {model.name!r}, whose maps have sides "
            f"(fractions of the latent side) {have}"
        )

    def groups(self, model, source: str, targets: list[str]) -> list[list[str]]:
        """Targets grouped by controller kind (one batch each; `auto` splits swaps from additions)."""
        if self.edit != "auto":
            return [targets]
        swaps = [t for t in targets if same_token_count(model.tokenizer, source, t)]
        others = [t for t in targets if t not in swaps]
        return [g for g in (swaps, others) if g]

    # ----------------------------------------------------------------------------------- edit
    def __call__(self, model, inputs: Inputs) -> list[EditResult]:
        processors = model.unet.attn_processors.values()
        odd = {type(p).__name__ for p in processors if not isinstance(p, STANDARD_PROCESSORS)}
        if odd:
            raise UserInputError(
                f"method={self.name} is not supported for base model {model.name!r}: its UNet uses "
                f"{', '.join(sorted(odd))} attention, not the plain softmax attention "
                f"Prompt-to-Prompt edits; use method=imagic or method=direct_inversion"
            )
        self.check_blend_layers(model)
        targets = self.target_prompts or ([inputs.target_prompt] if inputs.target_prompt else [])
        for k, t in enumerate(targets):
            require_text(t, f"target prompt {k + 1}")
        if not targets and not self.reconstruction:
            raise UserInputError("give target_prompt=... (or method.target_prompts=[...]) to edit")
        # 1. The inversion: z_T and the null embeddings (artifact or computed now).
        inv = self.invert(model, inputs)
        for t in targets:
            model.encode_prompt([t], "target_prompt")  # refuses over-long prompts early
        edit_uncond = text_embedding(model, "") if self.edit_null == "empty" else None
        results: list[EditResult] = []
        recon = None
        # 2. One batched Prompt-to-Prompt run per controller kind: [source, *edits].
        for group in self.groups(model, inv.prompt, targets):
            prompts = [inv.prompt, *group]
            latents = p2p_sample(
                model,
                inv.x_T,
                prompts,
                self.controller(model, prompts),
                inv.schedule,
                inv.guidance_scale,
                inv.uncond,
                edit_uncond_embeddings=edit_uncond,
            )
            images = model.decode(latents).clamp(-1, 1).cpu()
            recon = images[0]
            for prompt, image in zip(group, images[1:]):
                results.append(self._result(image, prompt, prompt, inv))
        # 3. The reconstruction (source prompt only) beside the edits.
        if self.reconstruction:
            if recon is None:
                latents = p2p_sample(
                    model,
                    inv.x_T,
                    [inv.prompt],
                    None,
                    inv.schedule,
                    inv.guidance_scale,
                    inv.uncond,
                )
                recon = model.decode(latents).clamp(-1, 1).cpu()[0]
            results.append(self._result(recon, "reconstruction", inv.prompt, inv))
        return results

    def _result(self, image: Tensor, label: str, prompt: str, inv: Inversion) -> EditResult:
        params = {
            "method": self.name,
            "inversion": self.inversion,
            "edit_null": self.edit_null,
            "prompt": prompt,
            "source_prompt": inv.prompt,
            "guidance_scale": inv.guidance_scale,
            "num_inference_steps": len(inv.schedule),
            "cross_replace_steps": self.cross_replace_steps,
            "self_replace_steps": self.self_replace_steps,
        }
        return EditResult(image=image, label=f"{self.inversion}: {label}", params=params)
