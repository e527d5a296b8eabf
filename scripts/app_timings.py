"""The web app's invert-once-edit-many times on a base model: the first edit of each method on a
photo (its training stage or inversion included) against the further edits that change a slider.

    OMP_NUM_THREADS=1 python scripts/app_timings.py [--base-model demo] [--markdown out.md]

Runs what the page runs for each press of Run or slider move (`editing_app.web.session.Session.run`
with the page's defaults, `editing_app.web.methods`), in one session on the example photo, and
prints one row per edit with its seconds and its ratio to the method's first edit.
"""

from __future__ import annotations

import argparse
import json
import shutil
import tempfile
import time
from pathlib import Path

SLIDERS = {
    "eta": 0.7,
    "seeds": "0,1",
    "imagic_guidance": 3.0,
    "noise_lambda": 0.3,
    "di_guidance": 3.0,
    "cross_replace": 0.8,
    "self_replace": 0.4,
    "reweight_word": "",
    "reweight_factor": 1.0,
    "candidates": 8,
}
# (method family, the label of the change, the slider values it sets); the first of each family
# is its first edit.
EDITS = [
    ("direct_inversion", "first edit (lambda 0.3)", {}),
    ("direct_inversion", "lambda 0.5", {"noise_lambda": 0.5}),
    ("direct_inversion", "lambda 0.7", {"noise_lambda": 0.7}),
    ("direct_inversion", "guidance 5", {"noise_lambda": 0.7, "di_guidance": 5.0}),
    ("direct_inversion", "lambda 0.5, 10 sampling steps", {"noise_lambda": 0.5, "steps": 10}),
    ("imagic", "first edit (eta 0.7, seeds 0,1)", {}),
    ("imagic", "eta 0.8", {"eta": 0.8}),
    ("imagic", "eta 0.9", {"eta": 0.9}),
    ("imagic", "eta 0.9, seed 2", {"eta": 0.9, "seeds": "2"}),
    ("null_text_p2p", "first edit (cross 0.8, self 0.4)", {}),
    ("null_text_p2p", "cross 0.6", {"cross_replace": 0.6}),
    ("null_text_p2p", "reweight 'blue' x2", {"reweight_word": "blue", "reweight_factor": 2.0}),
]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--base-model", default="demo")
    parser.add_argument("--markdown", type=Path, default=None)
    args = parser.parse_args()

    from demo_world.examples import EXAMPLES_DIR
    from editing_app import api
    from editing_app.cli import configure_logging
    from editing_app.web.methods import method_plan
    from editing_app.web.session import Session, slider_settings

    configure_logging()
    example = json.loads((EXAMPLES_DIR / "examples.json").read_text())["red_circle"]
    model = api.load_model(args.base_model, device="cpu")
    root = Path(tempfile.mkdtemp(prefix="app-timings-"))
    uploads = root / "uploads"
    uploads.mkdir()
    shutil.copy(EXAMPLES_DIR / example["image"], uploads / "photo.png")
    session = Session(root / "session", uploads, 20 * 2**20)
    session.set_photo(uploads / "photo.png")
    source = example["source_prompt"]
    blue, square = example["target_prompts"]
    rows, first = [], {}
    for family, label, change in EDITS:
        plan = method_plan(family, args.base_model, model.diffusion.is_latent)
        values = {**SLIDERS, **change}
        settings = slider_settings(plan.method, values)
        if "steps" in change:
            settings["num_inference_steps"] = int(change["steps"])
        start = time.perf_counter()
        record = session.run(
            model,
            plan,
            source_prompt=source,
            target_prompt=square if family == "imagic" else blue,
            seed=0,
            settings=settings,
        )
        seconds = time.perf_counter() - start
        first.setdefault(family, seconds)
        rows.append((family, label, seconds, seconds / first[family], record))
        print(
            f"{family:17s} {label:34s} {seconds:7.2f} s  x{seconds / first[family]:.2f}", flush=True
        )
    lines = [
        "| method | edit | seconds | / first | trained | reused |",
        "|---|---|---:|---:|---|---|",
    ]
    for family, label, seconds, ratio, record in rows:
        lines.append(
            f"| {family} | {label} | {seconds:.2f} | {ratio:.2f} | {record.trained} | {record.reused} |"
        )
    table = "\n".join(lines)
    print(table)
    if args.markdown:
        args.markdown.write_text(table + "\n")
    shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
