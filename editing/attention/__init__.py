"""Prompt-to-Prompt (Hertz et al. 2022) through diffusers attention processors.

- `attention_control(unet, controller)`: a context manager routing every attention layer through a
  controller with `unet.set_attn_processor` (originals restored on exit).
- Controllers: `AttentionController` (identity), `AttentionStore`, `AttentionReplace`,
  `AttentionRefine`, `AttentionReweight`, `LocalBlend`, `ComposedController`.
- Helpers: `word_indices` (word -> token positions), `align` / `refinement_mapper` (token alignment).

Conventions: the UNet batch is [uncond x P; cond x P] for prompts [source, edit_1, ..., edit_K];
controllers observe and edit the conditional half only and never modify the source row; the sampling
loop calls `begin_step(i, N)` before each UNet call and `end_step(x)` after each DDIM step
(`editing.editors.p2p_sampling.p2p_sample` does all of this).
"""

from editing.attention.alignment import align, refinement_mapper
from editing.attention.blend import LocalBlend
from editing.attention.controller import AttentionController, ComposedController
from editing.attention.edit_base import AttentionEdit
from editing.attention.processor import ControlledAttnProcessor, attention_control
from editing.attention.refine import AttentionRefine
from editing.attention.replace import AttentionReplace
from editing.attention.reweight import AttentionReweight
from editing.attention.site import AttentionSite
from editing.attention.store import AttentionStore
from editing.attention.words import word_indices

__all__ = [
    "AttentionController",
    "AttentionEdit",
    "AttentionRefine",
    "AttentionReplace",
    "AttentionReweight",
    "AttentionSite",
    "AttentionStore",
    "ComposedController",
    "ControlledAttnProcessor",
    "LocalBlend",
    "align",
    "attention_control",
    "refinement_mapper",
    "word_indices",
]
