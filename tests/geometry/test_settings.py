"""image_fit and output_full_size: one default, in the configs and the core alike."""

from __future__ import annotations

import yaml

from editing.io.geometry import DEFAULT_FIT, FITS
from editing_app.configs import CONFIG_DIR
from editing_app.validation import TOP_RULES


def test_the_configs_use_the_core_default_fit():
    for name in ("edit", "train"):
        cfg = yaml.safe_load((CONFIG_DIR / f"{name}.yaml").read_text())
        assert cfg["image_fit"] == DEFAULT_FIT == "aspect"
    assert yaml.safe_load((CONFIG_DIR / "edit.yaml").read_text())["output_full_size"] is True
    assert tuple(TOP_RULES["image_fit"].options) == FITS


def test_the_feather_setting_of_the_masked_methods():
    from editing.editors.blended import BlendedEditor
    from editing.editors.blended_latent import BlendedLatentEditor

    for cls, name in ((BlendedEditor, "blended"), (BlendedLatentEditor, "blended_latent")):
        cfg = yaml.safe_load((CONFIG_DIR / "method" / f"{name}.yaml").read_text())
        assert cfg["feather"] == cls.feather == 0
