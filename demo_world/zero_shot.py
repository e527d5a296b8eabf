"""Zero-shot attribute retrieval: how well a CLIP reads the shapes world.

For each test image of one object, the candidate texts are its own caption with one attribute
replaced by every value of that attribute (6 colours, 5 shapes, 2 sizes, 9 positions); the CLIP
"retrieves" the attribute when the true caption has the highest image-text similarity. This is what
Blended Diffusion's guidance and the CLIP metrics need from the demo CLIP.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import torch

from demo_world.render import RenderStyle, render
from demo_world.scene import Scene, caption, sample_scene
from demo_world.vocabulary import COLOURS, POSITIONS, SHAPES, SIZES

ATTRIBUTE_VALUES = {
    "colour": tuple(COLOURS),
    "shape": tuple(SHAPES),
    "size": tuple(SIZES),
    "position": tuple(POSITIONS),
}


def _variants(scene: Scene, attribute: str) -> list[str]:
    obj = scene.objects[0]
    return [
        caption(Scene((replace(obj, offset=(0.0, 0.0), **{attribute: v}),), scene.background))
        for v in ATTRIBUTE_VALUES[attribute]
    ]


@torch.no_grad()
def attribute_retrieval(
    clip, n: int = 200, seed: int = 1234, resolution: int = 32, styled: bool = False
) -> dict[str, float]:
    """Accuracy per attribute of picking the true caption among its one-attribute variants."""
    rng = np.random.default_rng(seed)
    hits = {a: 0 for a in ATTRIBUTE_VALUES}
    for k in range(n):
        scene = sample_scene(rng, max_objects=1)
        image = render(
            scene,
            resolution,
            rng=np.random.default_rng([seed, k]),
            style=RenderStyle() if styled else None,
        )
        x = torch.from_numpy(image).permute(2, 0, 1)[None].float().to(clip.device) / 255.0
        u = clip.encode_image(x)
        for attribute in ATTRIBUTE_VALUES:
            texts = _variants(scene, attribute)
            truth = texts.index(caption(scene))
            scores = (clip.encode_text(texts) @ u.T).squeeze(1)
            hits[attribute] += int(scores.argmax()) == truth
    return {a: h / n for a, h in hits.items()}
