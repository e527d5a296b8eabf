"""The shipped example inputs: demo-world photographs with captions, masks and suggested edits.

They are rendered by the generator in its "real-looking" style (texture noise, slight blur and
colour jitter), so they are slightly off the training distribution, as a user's photograph would
be. `python -m demo_world.examples` regenerates `assets/examples/` deterministically.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from PIL import Image

from demo_world.asset_paths import ASSETS_DIR
from demo_world.render import RenderStyle, object_masks, render
from demo_world.scene import caption, parse_caption

EXAMPLES_DIR = ASSETS_DIR / "examples"

# name: (source caption, suggested target captions)
EXAMPLES = {
    "red_circle": (
        "a large red circle in the center on a gray background",
        [
            "a large blue circle in the center on a gray background",
            "a large red square in the center on a gray background",
        ],
    ),
    "blue_square": (
        "a small blue square at the top left on a white background",
        [
            "a small yellow square at the top left on a white background",
            "a small blue square at the bottom right on a white background",
        ],
    ),
    "green_triangle": (
        "a large green triangle on the left on a striped background",
        [
            "a large magenta triangle on the left on a striped background",
            "a large green star on the left on a striped background",
        ],
    ),
    "two_objects": (
        "a small yellow star at the top right and a large cyan cross at the bottom left on a dark gray background",
        [
            "a small red star at the top right and a large cyan cross at the bottom left on a dark gray background"
        ],
    ),
    # the red circle photographed wider: 4:3 landscape (48 x 36 px), for the non-square path
    "red_circle_wide": (
        "a large red circle in the center on a gray background",
        [
            "a large blue circle in the center on a gray background",
            "a large red square in the center on a gray background",
        ],
    ),
}


# name: (render side, rows kept): rendered as a larger square, then the centre rows cropped
WIDE = {"red_circle_wide": (48, 36)}


def make_examples(folder: Path = EXAMPLES_DIR, resolution: int = 32, seed: int = 7) -> list[Path]:
    """Write `<name>.png`, `<name>_mask.png` (the first object, white) and `examples.json`.

    The `WIDE` examples are rendered at their own side and cropped to their rows (a landscape
    photo); the others are `resolution`-px squares. Each example draws from its own seed
    (`[seed, index]`), so adding one leaves the others' bytes unchanged."""
    folder.mkdir(parents=True, exist_ok=True)
    index = {}
    written = []
    for k, (name, (source, targets)) in enumerate(EXAMPLES.items()):
        scene = parse_caption(source)
        assert caption(scene) == source, (caption(scene), source)
        side, rows = WIDE.get(name, (resolution, resolution))
        image = render(scene, side, rng=np.random.default_rng([seed, k]), style=RenderStyle())
        mask = object_masks(scene, side)[0]
        top = (side - rows) // 2
        image, mask = image[top : top + rows], mask[top : top + rows]
        Image.fromarray(image).save(folder / f"{name}.png")
        Image.fromarray((mask * 255).astype(np.uint8)).save(folder / f"{name}_mask.png")
        index[name] = {
            "image": f"{name}.png",
            "mask": f"{name}_mask.png",
            "source_prompt": source,
            "target_prompts": targets,
        }
        written += [folder / f"{name}.png", folder / f"{name}_mask.png"]
    (folder / "examples.json").write_text(json.dumps(index, indent=2) + "\n")
    return written


if __name__ == "__main__":
    for path in make_examples():
        print(path)
