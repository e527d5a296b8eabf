"""The shapes world: a procedural, captioned image world with an exact attribute oracle.

Coloured shapes (one or two) on gray backgrounds, captions such as "a large red circle at the top
left on a gray background". The demo text-to-image model is trained on it, and the oracle measures
edits on it: did the attribute change, was everything else kept.

- `vocabulary`: the closed vocabulary (shapes, colours, sizes, positions, backgrounds, WORDS).
- `scene`: ObjectSpec / Scene, sampling, captions and their parser.
- `geometry` and `render`: anti-aliased numpy rendering, object masks, a "real-looking" style.
- `oracle` (with `backdrop`): reading images back into attributes, and judging them.
- `suite`: deterministic edit cases (source, target, prompts, images, mask).
"""

from demo_world.oracle import ObjectReading, Reading, judge, judge_object, read_image
from demo_world.render import RenderStyle, object_masks, render
from demo_world.scene import ObjectSpec, Scene, caption, parse_caption, sample_scene
from demo_world.suite import EDIT_TYPES, EditCase, make_suite
from demo_world.vocabulary import BACKGROUNDS, COLOURS, POSITIONS, SHAPES, SIZES, WORDS

__all__ = [
    "BACKGROUNDS",
    "COLOURS",
    "EDIT_TYPES",
    "POSITIONS",
    "SHAPES",
    "SIZES",
    "WORDS",
    "EditCase",
    "ObjectReading",
    "ObjectSpec",
    "Reading",
    "RenderStyle",
    "Scene",
    "caption",
    "judge",
    "judge_object",
    "make_suite",
    "object_masks",
    "parse_caption",
    "read_image",
    "render",
    "sample_scene",
]
