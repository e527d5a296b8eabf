"""Running an editor on a model: the edit, then (on a cascade) super-resolution, applied once here
for every method rather than inside each editor."""

from __future__ import annotations

from editing.errors import UserInputError
from editing.io.edit_inputs import Inputs
from editing.io.outputs import EditResult
from editing.models.cascade import SuperResolutionSettings, super_resolve_results


def apply_editor(
    editor,
    model,
    inputs: Inputs,
    sr: SuperResolutionSettings | None = None,
) -> list[EditResult]:
    """`editor(model, inputs)`, then, when `model` is a pixel cascade and the editor's results are
    base-stage images (`editor.cascade_super_resolution`, true for Direct Inversion and Prompt-to-Prompt),
    each one super-resolved with its own prompt (`sr` settings; default IF-II's 50 steps at
    guidance 4). Imagic super-resolves its own samples (with e_tgt and the fine-tuned SR stage);
    pixel Blended Diffusion's results stay at the base resolution, where its mask lives."""
    check_conditioning(editor, model)
    results = editor(model, inputs)
    if not getattr(editor, "cascade_super_resolution", False):
        return results
    return super_resolve_results(model, results, inputs.seed, sr or SuperResolutionSettings())


def check_conditioning(editor, model) -> None:
    """Refuse, in one line, a method that conditions on text run on a model without a text
    encoder (`model.text_conditioned` false, e.g. `base_model=adm256`), and a method that does not
    yet pass SDXL's pooled embedding run on an SDXL model (an editor says it does with a true
    `supports_sdxl`). An editor says it needs no text with a false `text_condition` (pixel
    Blended Diffusion's default: CLIP guidance only)."""
    name = getattr(editor, "name", type(editor).__name__)
    if getattr(model, "conditioning_kind", "text") == "sdxl" and not getattr(
        editor, "supports_sdxl", False
    ):
        raise UserInputError(
            f"method={name} does not run on SDXL yet (base model {model.name!r}); on SDXL use "
            f"method=imagic, null_text_p2p, direct_inversion or blended_latent"
        )
    if getattr(model, "text_conditioned", True) or not getattr(editor, "text_condition", True):
        return
    fix = (
        "set method.text_condition=false"
        if hasattr(editor, "text_condition")
        else "use method=blended with method.text_condition=false"
    )
    raise UserInputError(
        f"method={name} conditions on text but base model "
        f"{model.name!r} is unconditional (no text encoder): {fix}"
    )
