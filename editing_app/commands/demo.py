"""`make demo`: every editing method on a shipped example image, offline, on a CPU.

Runs Imagic (reduced step counts), null-text inversion + Prompt-to-Prompt, Direct Inversion and
Blended Diffusion on `assets/examples/red_circle.png` with the project's demo model, then Blended
Diffusion again on the 4:3 photo `assets/examples/red_circle_wide.png`, writes each
method's outputs under `demo_output/<method>/` and one labelled comparison grid
`demo_output/comparison.png`, and prints where everything went and how long each step took.

    python demo.py [--base-model demo|tiny] [--output demo_output] [--quick]
    diffusion-edit-demo ...                 # the same, from an installed package

`--quick` (used by the test suite) cuts every step count to a few iterations.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")

EXAMPLE = "red_circle"
# The same scene photographed wider (48x36, 4:3): one more Blended edit at a non-square working
# size, written to WIDE_FOLDER with edit_full.png at the photo's own size.
WIDE_EXAMPLE = "red_circle_wide"
WIDE_FOLDER = "blended_4x3"


def plan(
    base_model: str, quick: bool, example: dict, out: Path, wide: dict | None = None
) -> list[tuple[str, str, list[str]]]:
    """(label, "train"/"edit", overrides) for every step of the demo, in order; with `wide` (a
    non-square example), a last Blended edit of it into `out / WIDE_FOLDER`."""
    from demo_world.examples import EXAMPLES_DIR

    image = str(EXAMPLES_DIR / example["image"])
    mask = str(EXAMPLES_DIR / example["mask"])
    source = example["source_prompt"]
    colour_edit, shape_edit = example["target_prompts"][0], example["target_prompts"][1]
    q = quick
    train_common = [
        f"base_model={base_model}",
        "trainer=cpu",
        "logger=none",
        "callbacks=none",
        f"image={image}",
    ]
    edit_common = [f"base_model={base_model}", f"image={image}"]
    ckpt = out / "checkpoints"
    return [
        (
            "imagic: optimise the embedding and fine-tune",
            "train",
            [
                *train_common,
                "stage=imagic_demo",
                f"target_prompt={shape_edit}",
                f"output_dir={ckpt / 'imagic'}",
                *(["stage.embed.num_steps=3", "stage.finetune.num_steps=3"] if q else []),
            ],
        ),
        (
            "imagic: interpolate and sample",
            "edit",
            [
                *edit_common,
                "method=imagic",
                f"checkpoint_dir={ckpt / 'imagic'}",
                f"output_dir={out / 'imagic'}",
                "method.eta=[0.7,0.9]",
                "method.seeds=[0,1]",
                "method.guidance_scale=3",
                f"method.num_inference_steps={3 if q else 50}",
            ],
        ),
        (
            "null-text inversion",
            "train",
            [
                *train_common,
                "stage=null_text",
                f"source_prompt={source}",
                f"output_dir={ckpt / 'null_text'}",
                # 25 DDIM steps (the paper's 50 halved: the demo's two-minute budget)
                f"stage.num_inference_steps={3 if q else 25}",
                f"stage.num_inner_steps={2 if q else 10}",
            ],
        ),
        (
            "prompt-to-prompt edit (colour swap, local blend)",
            "edit",
            [
                *edit_common,
                "method=null_text_p2p",
                f"checkpoint_dir={ckpt / 'null_text'}",
                f"output_dir={out / 'null_text_p2p'}",
                f"target_prompt={colour_edit}",
                "method.blend_words=auto",
                # LocalBlend on 16x16 maps with a 0.5 threshold: the demo model's 8x8 maps are too
                # coarse and lower thresholds let the edit leak into the background.
                f"method.blend_resolution={0.5 if base_model == 'demo' else 1.0}",
                f"method.blend_threshold={0.5 if base_model == 'demo' else 0.3}",
                # The optimised nulls keep the source branch on the photo; the edit is guided
                # with the "" null (shared nulls deform it on the demo model: docs/methods.md).
                "method.edit_null=empty",
            ],
        ),
        (
            "direct inversion (colour swap, lambda sweep)",
            "edit",
            [
                *edit_common,
                "method=direct_inversion",
                f"source_prompt={source}",
                f"target_prompt={colour_edit}",
                f"output_dir={out / 'direct_inversion'}",
                # the demo model's unconditional branch is weak: invert with the caption
                "method.invert_with_source=true",
                "method.noise_lambda=[0.3,0.5]",
                f"method.num_inversion_steps={3 if q else 25}",
                f"method.num_inference_steps={3 if q else 25}",
            ],
        ),
        (
            "blended diffusion (shape inside the mask)",
            "edit",
            [
                *edit_common,
                f"mask={mask}",
                f"target_prompt={shape_edit}",
                f"output_dir={out / 'blended'}",
                *blended_settings(base_model, q),
            ],
        ),
        *([] if wide is None else [wide_step(base_model, q, wide, out)]),
    ]


def wide_step(base_model: str, quick: bool, wide: dict, out: Path) -> tuple[str, str, list[str]]:
    """The Blended edit of the non-square example (its own working size, 36x28 on the demo model)."""
    from demo_world.examples import EXAMPLES_DIR

    return (
        "blended diffusion on a 4:3 photo (36x28 working size)",
        "edit",
        [
            f"base_model={base_model}",
            f"image={EXAMPLES_DIR / wide['image']}",
            f"mask={EXAMPLES_DIR / wide['mask']}",
            f"target_prompt={wide['target_prompts'][1]}",
            f"output_dir={out / WIDE_FOLDER}",
            *blended_settings(base_model, quick),
        ],
    )


def blended_settings(base_model: str, quick: bool) -> list[str]:
    """Pixel Blended Diffusion (CLIP-guided) for the pixel demo model; Blended Latent Diffusion
    for latent models (the tiny fallback)."""
    if base_model == "demo":
        # 50 respaced DDPM steps (the preset starts at step 38 of them, the reference's 75 of 100
        # halved) and 4 candidates x 4 CLIP views keep the demo within two minutes on two cores.
        steps = (
            ["method.num_timesteps=4", "method.skip_timesteps=1"]
            if quick
            else ["method.num_timesteps=50"]
        )
        count = 2 if quick else 4
        return [
            "method=blended",
            "method.text_condition=true",
            # the shipped mask is the circle's own silhouette: a square needs a little more room
            "method.dilate=3",
            f"method.num_candidates={count}",
            f"method.num_augmentations={count}",
            *steps,
        ]
    steps = 3 if quick else 50
    return [
        "method=blended_latent",
        f"method.num_inference_steps={steps}",
        "method.num_candidates=2",
    ]


def edited_methods(steps: list[tuple[str, str, list[str]]]) -> list[str]:
    """The output folders of the plan's edit steps, in order: one per method family (the
    blended step runs method=blended or blended_latent into blended/). Every edit step names a
    method of the registry (configs/method/)."""
    from editing_app.registry import method_names

    folders = []
    for _, kind, overrides in steps:
        if kind != "edit":
            continue
        settings = dict(o.split("=", 1) for o in overrides if "=" in o)
        if settings.get("method") not in method_names():
            raise ValueError(f"demo step with unknown method {settings.get('method')!r}")
        folders.append(Path(settings["output_dir"]).name)
    return folders


def comparison_grid(out: Path, image_path: Path, methods: list[str]) -> Path:
    """input | each method's edit.png (`methods`: folders under `out`), labelled, as one PNG."""
    from PIL import Image

    from editing.io.outputs import make_grid

    tiles, labels = [Image.open(image_path).convert("RGB")], ["input"]
    for method in methods:
        edit_png = out / method / "edit.png"
        if edit_png.is_file():
            tiles.append(Image.open(edit_png).convert("RGB"))
            labels.append(method)
    path = out / "comparison.png"
    make_grid(tiles, labels).save(path)
    return path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--base-model", default="demo", help="demo (the shipped model) or tiny (random)"
    )
    parser.add_argument("--output", default="demo_output", type=Path)
    parser.add_argument("--quick", action="store_true", help="a few steps each (tests)")
    args = parser.parse_args(argv)

    from demo_world.demo_model import DEMO_MODEL_DIR
    from demo_world.examples import EXAMPLES_DIR
    from editing_app.cli import configure_logging
    from editing_app.commands.edit import edit
    from editing_app.commands.train import train
    from editing_app.configs import compose_config

    configure_logging()
    base_model = args.base_model
    if base_model == "demo" and not (DEMO_MODEL_DIR / "model_index.json").is_file():
        print(
            f"note: no demo model at {DEMO_MODEL_DIR}; running on base_model=tiny (random weights)"
        )
        base_model = "tiny"
    examples = json.loads((EXAMPLES_DIR / "examples.json").read_text())
    out = args.output.resolve()
    timings = []
    start = time.perf_counter()
    steps = plan(base_model, args.quick, examples[EXAMPLE], out, examples[WIDE_EXAMPLE])
    methods = edited_methods(steps)
    for label, kind, overrides in steps:
        t0 = time.perf_counter()
        if kind == "train":
            train(compose_config("train", overrides))
        else:
            edit(compose_config("edit", overrides))
        timings.append((label, time.perf_counter() - t0))
        print(f"[{time.perf_counter() - start:6.1f} s] {label}: {timings[-1][1]:.1f} s", flush=True)
    square = [m for m in methods if m != WIDE_FOLDER]  # the comparison shares one input
    grid = comparison_grid(out, EXAMPLES_DIR / examples[EXAMPLE]["image"], square)
    print(f"\ndemo ({base_model} model) finished in {time.perf_counter() - start:.1f} s")
    for method in methods:
        print(f"  {method:18s} {out / method}")
    print(f"  comparison grid    {grid}")
    return 0


def console_main() -> None:
    """The `diffusion-edit-demo` command."""
    sys.exit(main())
