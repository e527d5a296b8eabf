"""The editor contract: what `edit.py`, the evaluation runner and the demo expect of a method.

An editor is built from its YAML (`configs/method/<name>.yaml`) by Hydra's keyword
instantiation, `hydra.utils.instantiate(cfg.method)`: `_target_` names the class and every other
key is one of its settings. Each editor is a dataclass whose fields are those settings, with the
defaults the YAML repeats (`tests/configs/test_config_defaults.py` holds the two together), and
whose `__post_init__` checks and normalises them with `editing.editors.settings`, so a bad
setting fails at instantiation, before a model is loaded or a file written.

Calling the editor does the edit: `editor(model, inputs)` with a `DiffusionModel` (from
`configs/base_model/`) and the user's `Inputs` (image, mask, prompts, seed, checkpoint_dir)
returns the results best/first first; `edit.py` writes the first as edit.png, all of them under
samples/ and beside the input in grid.png. A problem with the user's inputs raises
`editing.errors.UserInputError` with a one-line message.

See docs/adding_a_method.md for adding one.
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

from editing.io.edit_inputs import Inputs
from editing.io.outputs import EditResult

__all__ = ["Editor", "EditResult", "Inputs"]


@runtime_checkable
class Editor(Protocol):
    """A text-driven image-editing method with its settings bound.

    Attributes:
        name: the method's name, the stem of its `configs/method/<name>.yaml` (recorded in each
            result's params and in the evaluation tables).
    """

    name: str

    def __call__(self, model, inputs: Inputs) -> list[EditResult]:
        """Edit `inputs` with `model`; one `EditResult` (image [3, H, W] in [-1, 1], label,
        params, optional score) per output, the best or first one first. Raises
        `UserInputError` for inputs the method cannot use (no image, no mask, a wrong model)."""
        ...
