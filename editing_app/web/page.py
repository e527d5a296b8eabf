"""The Gradio page: inputs on the left, the result, gallery and downloads on the right.

Every control and what it sets:
- Photo (any aspect ratio) and Mask (paint on the photo, or upload a mask file: white = edit);
- Method, Source prompt (the photo's caption), Target prompt (the edit);
- Run trains the method's stage once (progress bar, Cancel) and edits; moving a slider re-edits
  from what this session already holds:
  Imagic eta, seeds and guidance; Direct Inversion lambda, guidance and sampling steps;
  Prompt-to-Prompt cross / self replace fractions and one reweighted word with its factor;
  Blended Diffusion's number of ranked candidates;
- the result (the first/best), the gallery (the labelled grid, then every result), Downloads
  (edit.png with its PNG metadata, the grid), Artifact (the files the edit read, offered again
  when they change), and Details (times, reuse).

A bad input or failure is one line in the Status box, never a traceback. Jobs queue on one
concurrency group per device (one at a time); each Run or slider release first enqueues the job's
cancel token outside the queue (`Session.enqueue`), and Cancel, outside the queue too, sets the
tokens of the session's queued and running jobs. Only the methods the model runs are offered
(`methods.offered_methods`); Gradio's stored uploads are swept (`UPLOAD_CACHE_CLEANUP`).
"""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any

import gradio as gr
from omegaconf import OmegaConf

from editing.errors import UserInputError
from editing_app import api
from editing_app.web.jobs import Cancelled, device_lock
from editing_app.web.methods import METHOD_LABELS, MethodPlan, method_plan, offered_methods
from editing_app.web.session import SessionStore, slider_settings
from editing_app.web.settings import UPLOAD_CACHE_CLEANUP

log = logging.getLogger(__name__)

__all__ = ["build_page"]

EXAMPLE_SOURCE = "a large red circle in the center on a gray background"
EXAMPLE_TARGET = "a large blue circle in the center on a gray background"

BOX_FAMILIES = ("imagic", "direct_inversion", "null_text_p2p", "blended")
"""The method family of each group of sliders, in the page's order."""


def _first(value: Any) -> float:
    """A setting's value, or the first of a list of values (a sweep), as a slider's start."""
    return float(value[0] if isinstance(value, (list, tuple)) else value)


def _method_defaults(plans: dict[str, MethodPlan]) -> dict[str, Any]:
    """The sliders' starting values: the plans' edit settings, else configs/method/*.yaml's."""
    from editing_app.configs import compose_config

    def setting(family: str, key: str) -> Any:
        plan = plans[family]
        if key in plan.edit_settings:
            return plan.edit_settings[key]
        value = compose_config("edit", [f"method={plan.method}"]).method.get(key)
        return OmegaConf.to_container(value) if OmegaConf.is_config(value) else value

    seeds = setting("imagic", "seeds")
    seeds = seeds if isinstance(seeds, (list, tuple)) else [seeds]
    return {
        "eta": _first(setting("imagic", "eta")),
        "seeds": ",".join(str(int(s)) for s in seeds),
        "imagic_guidance": _first(setting("imagic", "guidance_scale")),
        "noise_lambda": _first(setting("direct_inversion", "noise_lambda")),
        "di_guidance": _first(setting("direct_inversion", "guidance_scale")),
        "di_steps": int(setting("direct_inversion", "num_inference_steps")),
        "cross_replace": _first(setting("null_text_p2p", "cross_replace_steps")),
        "self_replace": _first(setting("null_text_p2p", "self_replace_steps")),
        "candidates": int(setting("blended", "num_candidates")),
    }


def _path_only(component: gr.Image) -> gr.Image:
    """Make an upload component hand over the stored file's path without opening it: the file is
    checked (size, header, then decoded) by `editing_app.web.uploads`, never first by Gradio."""

    def preprocess(payload: Any) -> str | None:
        return None if payload is None or payload.path is None else str(payload.path)

    component.preprocess = preprocess
    return component


def error_line(err: BaseException) -> str:
    """The Status line of a failure: a `UserInputError` whole, its lines joined into one; any
    other error as its type and the first line of its message (the traceback goes to the log)."""
    if isinstance(err, UserInputError):
        return "error: " + " ".join(str(err).split())
    line = str(err).splitlines()[0] if str(err).strip() else type(err).__name__
    return f"error: {type(err).__name__}: {line}"


def _status_only(message: str) -> tuple[Any, ...]:
    """The outputs of an edit that ended early: the message, every other output unchanged."""
    return gr.update(), gr.update(), gr.update(), gr.update(), message, gr.update()


def build_page(
    model: api.Model, base_model: str, sessions: SessionStore, example: Path | None = None
) -> gr.Blocks:
    """The app's Blocks for `model` (its configs/base_model choice `base_model`); sessions hold
    each browser session's folder and artifacts; `example`: a photo offered as an example."""
    latent = model.diffusion.is_latent
    plans = {family: method_plan(family, base_model, latent) for family in METHOD_LABELS.values()}
    defaults = _method_defaults(plans)
    labels = offered_methods(plans, model.diffusion)  # what this model runs, by label
    first = "Direct Inversion" if "Direct Inversion" in labels else next(iter(labels))
    device = str(model.device)
    queue = {"concurrency_id": f"device-{device}", "concurrency_limit": 1}

    with gr.Blocks(
        title="Diffusion image editing",
        analytics_enabled=False,
        delete_cache=UPLOAD_CACHE_CLEANUP,
    ) as page:
        gr.Markdown(
            f"## Text-driven editing of a photo\nBase model **{base_model}** on {device}. "
            "Upload a photo, choose a method, type the prompts and press **Run**: the method "
            "trains or inverts once, then every slider change re-edits in seconds."
        )
        with gr.Row():
            with gr.Column(scale=1):
                photo = _path_only(
                    gr.Image(
                        label="Photo",
                        type="filepath",
                        image_mode=None,
                        sources=["upload"],
                        height=260,
                        elem_id="photo",
                    )
                )
                with gr.Accordion("Mask (Blended Diffusion): paint the region to edit", open=False):
                    mask_editor = gr.ImageEditor(
                        label="Paint on the photo",
                        type="numpy",
                        sources=[],
                        transforms=[],
                        layers=False,
                        brush=gr.Brush(colors=["#ffffff"], color_mode="fixed"),
                        height=260,
                        elem_id="mask-editor",
                    )
                    mask_file = _path_only(
                        gr.Image(
                            label="...or upload a mask (white = edit)",
                            type="filepath",
                            image_mode=None,
                            sources=["upload"],
                            height=160,
                            elem_id="mask-file",
                        )
                    )
                method = gr.Radio(list(labels), value=first, label="Method", elem_id="method")
                source = gr.Textbox(
                    label="Source prompt (the photo's caption)",
                    value=EXAMPLE_SOURCE if base_model == "demo" else "",
                    elem_id="source",
                )
                target = gr.Textbox(
                    label="Target prompt (the edit)",
                    value=EXAMPLE_TARGET if base_model == "demo" else "",
                    elem_id="target",
                )
                seed = gr.Number(label="Seed", value=0, precision=0, minimum=0)
                with gr.Row():
                    run = gr.Button("Run", variant="primary", elem_id="run")
                    cancel = gr.Button("Cancel", variant="stop", elem_id="cancel")
                status = gr.Textbox(label="Status", interactive=False, lines=2, elem_id="status")
                with gr.Group(visible=labels[first] == "imagic") as imagic_box:
                    eta = gr.Slider(0, 2, value=defaults["eta"], step=0.05, label="Imagic eta")
                    seeds = gr.Textbox(value=defaults["seeds"], label="Imagic seeds (0,1,...)")
                    imagic_guidance = gr.Slider(
                        1, 15, value=defaults["imagic_guidance"], step=0.5, label="Imagic guidance"
                    )
                with gr.Group(visible=labels[first] == "direct_inversion") as di_box:
                    noise_lambda = gr.Slider(
                        0,
                        1,
                        value=defaults["noise_lambda"],
                        step=0.05,
                        label="Direct Inversion lambda",
                    )
                    di_guidance = gr.Slider(
                        1,
                        15,
                        value=defaults["di_guidance"],
                        step=0.5,
                        label="Direct Inversion guidance",
                    )
                    di_steps = gr.Slider(
                        5,
                        max(defaults["di_steps"], 50),
                        value=defaults["di_steps"],
                        step=1,
                        label="Direct Inversion sampling steps",
                    )
                with gr.Group(visible=labels[first] == "null_text_p2p") as p2p_box:
                    cross = gr.Slider(
                        0,
                        1,
                        value=defaults["cross_replace"],
                        step=0.05,
                        label="Cross-attention replace fraction",
                    )
                    self_ = gr.Slider(
                        0,
                        1,
                        value=defaults["self_replace"],
                        step=0.05,
                        label="Self-attention replace fraction",
                    )
                    reweight_word = gr.Textbox(label="Reweight word (a word of the target prompt)")
                    reweight_factor = gr.Slider(-2, 5, value=1, step=0.1, label="Reweight factor")
                with gr.Group(visible=labels[first] == "blended") as blended_box:
                    candidates = gr.Slider(  # pixel Blended Diffusion's default is 64 (P)
                        1,
                        max(defaults["candidates"], 16),
                        value=defaults["candidates"],
                        step=1,
                        label="Blended candidates",
                    )
            with gr.Column(scale=1):
                result = gr.Image(
                    label="Result", type="filepath", interactive=False, elem_id="result"
                )
                gallery = gr.Gallery(
                    label="Grid and results",
                    columns=2,
                    height=300,
                    object_fit="contain",
                    elem_id="gallery",
                )
                downloads = gr.File(
                    label="Downloads (edit.png with its metadata, the grid)", file_count="multiple"
                )
                artifact_files = gr.File(
                    label="Artifact (edit.py checkpoint_dir=...): updated when it changes",
                    file_count="multiple",
                )
                details = gr.JSON(label="Details")
        if example is not None:
            gr.Examples([[str(example)]], inputs=[photo], label="Example photo")

        boxes = [imagic_box, di_box, p2p_box, blended_box]

        def show(label: str) -> list[Any]:
            family = labels.get(label)
            return [gr.update(visible=family == name) for name in BOX_FAMILIES]

        method.change(show, method, boxes, queue=False)

        def on_photo(photo_path: str | None, request: gr.Request) -> tuple[Any, str]:
            session = sessions.get(request.session_hash)
            try:
                session.set_photo(photo_path)
            except UserInputError as err:
                return gr.update(value=None), error_line(err)
            shown = session.photo_preview()
            value = (
                None
                if shown is None
                else {"background": str(shown), "layers": [], "composite": None}
            )
            return gr.update(value=value), "photo ready" if shown else ""

        # Outside the device queue: a new photo shows at once, even while a job runs (a run
        # keeps the photo it started with).
        photo.change(on_photo, photo, [mask_editor, status], concurrency_limit=None)

        def edit(
            photo_path: str | None,
            mask_value: dict | None,
            mask_path: str | None,
            method_label: str,
            source_prompt: str,
            target_prompt: str,
            seed_value: float | None,
            eta_value: float,
            seeds_text: str,
            imagic_guidance_value: float,
            lambda_value: float,
            di_guidance_value: float,
            di_steps_value: float,
            cross_value: float,
            self_value: float,
            word: str,
            factor: float,
            candidates_value: float,
            request: gr.Request,
            progress: gr.Progress = gr.Progress(),  # noqa: B008 (Gradio's progress idiom)
        ) -> tuple[Any, ...]:
            session = sessions.get(request.session_hash)
            family = labels.get(method_label)
            with session.job() as token:  # the token enqueued with this job
                try:
                    if family is None:
                        raise UserInputError(f"choose a method: {', '.join(labels)}")
                    plan = plans[family]
                    if photo_path is None:
                        raise UserInputError("upload a photo first")
                    session.set_photo(photo_path)
                    layers = (
                        (mask_value or {}).get("layers") if isinstance(mask_value, dict) else None
                    )
                    mask = (
                        session.mask(mask_path, layers)
                        if plan.method.startswith("blended")
                        else None
                    )
                    if plan.method.startswith("blended") and mask is None:
                        raise UserInputError(
                            "Blended Diffusion edits inside a mask: paint or upload one"
                        )
                    values = {
                        "eta": eta_value,
                        "seeds": seeds_text,
                        "imagic_guidance": imagic_guidance_value,
                        "noise_lambda": lambda_value,
                        "di_guidance": di_guidance_value,
                        "cross_replace": cross_value,
                        "self_replace": self_value,
                        "reweight_word": word,
                        "reweight_factor": factor,
                        "candidates": candidates_value,
                    }
                    settings = slider_settings(plan.method, values)
                    if plan.method == "direct_inversion":
                        settings["num_inference_steps"] = int(di_steps_value)

                    def report(stage: str, done: int, total: int | None) -> None:
                        if stage == "edit":
                            progress(None, desc="editing")
                        elif total:
                            progress((done, total), desc=stage, unit="steps")

                    with device_lock(device):
                        started = time.time()
                        record = session.run(
                            model,
                            plan,
                            source_prompt=source_prompt or "",
                            target_prompt=target_prompt or "",
                            seed=int(seed_value or 0),
                            settings=settings,
                            mask=mask,
                            report=report,
                            token=token,
                        )
                        finished = time.time()
                except Cancelled as err:  # before the start, or during the training stage
                    return _status_only(f"cancelled: {err}")
                except UserInputError as err:
                    return _status_only(error_line(err))
                except Exception as err:  # one line on the page, the traceback in the server log
                    log.exception("edit failed")
                    return _status_only(error_line(err))
            out = record.folder
            samples = sorted((out / "samples").glob("*.png")) if (out / "samples").is_dir() else []
            shown = [(str(out / "grid.png"), "grid")] + [
                (str(p), label)
                for p, label in zip(samples or [out / "edit.png"], record.output.labels)
            ]
            files = [str(out / "edit.png"), str(out / "grid.png")]
            # The artifact is offered again only when it changed (Gradio copies what it serves,
            # and a fine-tuned UNet is gigabytes on a real model).
            artifacts: Any = gr.update()
            if record.artifacts != session.offered:
                session.offered = list(record.artifacts)
                artifacts = [str(p) for p in record.artifacts] or None
            info = {
                **record.details(),
                "started": round(started, 3),
                "finished": round(finished, 3),
            }
            what = (
                "trained"
                if record.trained
                else ("reused the session's artifact" if record.reused else "no training stage")
            )
            if plan.method == "direct_inversion":
                what = "reused the inversion" if record.reused else "inverted the photo"
            message = (
                f"done in {info['seconds']:.1f} s ({what}); {len(record.output.images)} result(s)"
            )
            return str(out / "edit.png"), shown, files, artifacts, message, info

        inputs = [
            photo,
            mask_editor,
            mask_file,
            method,
            source,
            target,
            seed,
            eta,
            seeds,
            imagic_guidance,
            noise_lambda,
            di_guidance,
            di_steps,
            cross,
            self_,
            reweight_word,
            reweight_factor,
            candidates,
        ]
        outputs = [result, gallery, downloads, artifact_files, status, details]

        def on_enqueue(request: gr.Request) -> None:
            # Outside the queue, as the job is enqueued: its cancel token (see Session.job).
            sessions.get(request.session_hash).enqueue()

        def submit(event: Any, api_name: str | bool) -> None:
            event(on_enqueue, None, None, queue=False, api_name=False).then(
                edit, inputs, outputs, api_name=api_name, **queue
            )

        submit(run.click, "run")
        for slider in (
            eta,
            imagic_guidance,
            noise_lambda,
            di_guidance,
            di_steps,
            cross,
            self_,
            reweight_factor,
            candidates,
        ):
            submit(slider.release, False)

        def on_cancel(request: gr.Request) -> str:
            sessions.get(request.session_hash).cancel()
            return "cancelling: a queued job ends when it starts, a training stage at its next step"

        cancel.click(on_cancel, None, status, queue=False, api_name="cancel")
    return page
