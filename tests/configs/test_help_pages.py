"""Each entry point's --help page names the groups it uses and every choice of them (the pages are
written by hand in configs/{edit,train,evaluate}.yaml; this keeps them true to configs/)."""

from __future__ import annotations

import re

import pytest
import yaml

from editing_app.configs import CONFIG_DIR

PAGES = {
    "edit": ["method", "base_model", "clip"],
    "train": ["stage", "base_model", "trainer", "callbacks", "logger"],
    "evaluate": ["method", "suite", "base_model", "clip", "trainer"],
    "app": ["base_model", "clip"],
}


def _page(name: str) -> str:
    return yaml.safe_load((CONFIG_DIR / f"{name}.yaml").read_text())["hydra"]["help"]["template"]


@pytest.mark.parametrize("entry", sorted(PAGES))
def test_the_help_page_lists_every_choice_of_its_groups(entry):
    page = _page(entry)
    assert page.startswith(f"usage: python {entry}.py")
    words = set(re.findall(r"[\w*]+", page))
    for group in PAGES[entry]:
        assert f"{group}=" in page, f"{entry}.py --help does not name the {group} group"
        for choice in sorted(p.stem for p in (CONFIG_DIR / group).glob("*.yaml")):
            random = group == "base_model" and choice.startswith("tiny")
            if group == "base_model" and choice in ("none", "demo_init"):
                continue  # internal choices (pretraining from scratch)
            if (
                group == "trainer"
                and entry == "evaluate"
                and choice not in ("default", "cpu", "gpu")
            ):
                continue  # evaluate.py trains each case on one device
            assert ("tiny*" in words) if random else (choice in words), (
                f"{entry}.py --help omits {group}={choice}"
            )


def test_edit_help_does_not_offer_training_groups():
    page = _page("edit")
    assert "stage=" not in page and "trainer=" not in page
