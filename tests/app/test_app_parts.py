"""The web app's parts without a server: the address and password rules, the upload checks,
the demo plans, the sliders' settings, and a session that trains once, edits many times and
cancels a training run leaving nothing behind (demo model, step counts cut)."""

from __future__ import annotations

import shutil
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from editing.errors import UserInputError

REPO = Path(__file__).resolve().parents[2]
IMAGE = REPO / "assets" / "examples" / "red_circle.png"
SOURCE = "a large red circle in the center on a gray background"
SQUARE = "a large red square in the center on a gray background"


# --------------------------------------------------------------------------- settings
def settings_of(**app):
    from omegaconf import OmegaConf

    from editing_app.web.settings import AppSettings

    base = dict(
        host="127.0.0.1", port=7860, auth=None, session_dir="s", max_upload_mb=20, max_sessions=8
    )
    return AppSettings.from_config(OmegaConf.create({**base, **app}))


def test_only_loopback_listens_without_a_password(tmp_path):
    assert settings_of().auth == () and "loopback only" in settings_of().describe()
    assert settings_of(host="::1").auth == ()
    with pytest.raises(UserInputError, match="app.auth=user:password"):
        settings_of(host="0.0.0.0")
    with pytest.raises(UserInputError, match="app.auth"):
        settings_of(host="192.168.1.5")
    opened = settings_of(host="0.0.0.0", auth="me:secret:with:colons")
    assert opened.auth == (("me", "secret:with:colons"),)
    assert "password required" in opened.describe()
    users = tmp_path / "users.txt"
    users.write_text("# who may edit\nann:one\n\nbob:two\n")
    assert settings_of(host="10.0.0.2", auth=str(users)).auth == (("ann", "one"), ("bob", "two"))
    for bad in ("nouser", ":pw", "user:"):
        with pytest.raises(UserInputError, match="app.auth"):
            settings_of(auth=bad)
    users.write_text("# nobody\n")
    with pytest.raises(UserInputError, match="names no user"):
        settings_of(auth=str(users))


# ---------------------------------------------------------------------------- uploads
def test_uploads_are_checked_before_they_are_copied_in(tmp_path):
    from editing_app.web.uploads import accept_upload

    root, folder = tmp_path / "uploads", tmp_path / "session"
    root.mkdir()
    shutil.copy(IMAGE, root / "photo.png")
    copy = accept_upload(root / "photo.png", "photo", root, folder, 1 << 20)
    assert copy.parent == folder and copy.read_bytes() == IMAGE.read_bytes()
    assert accept_upload(root / "photo.png", "photo", root, folder, 1 << 20) == copy  # one copy
    with pytest.raises(UserInputError, match="uploaded through the page"):
        accept_upload(IMAGE, "photo", root, folder, 1 << 20)  # a path outside the upload folder
    with pytest.raises(UserInputError, match="uploaded through the page"):
        accept_upload(root / ".." / "elsewhere.png", "photo", root, folder, 1 << 20)
    with pytest.raises(UserInputError, match="limit is"):
        accept_upload(root / "photo.png", "photo", root, folder, 100)
    (root / "text.png").write_text("not an image")
    with pytest.raises(UserInputError, match=r"^cannot read photo text.png"):
        accept_upload(root / "text.png", "photo", root, folder, 1 << 20)
    assert sorted(p.name for p in folder.iterdir()) == [copy.name]  # nothing else was written


def test_a_painted_mask_is_what_was_painted(tmp_path):
    from editing_app.web.uploads import mask_from_layers

    assert mask_from_layers(None, tmp_path) is None
    empty = np.zeros((6, 8, 4), np.uint8)
    assert mask_from_layers([empty], tmp_path) is None
    painted = empty.copy()
    painted[1:3, 2:5, 3] = 255
    path = mask_from_layers([painted], tmp_path)
    mask = np.asarray(Image.open(path))
    assert mask.shape == (6, 8) and mask.dtype == np.uint8
    assert (mask == 255).sum() == 6 and (mask[1:3, 2:5] == 255).all()


# ------------------------------------------------------------------ plans and sliders
def test_the_demo_plans_are_make_demos_settings():
    from editing_app.commands.demo import blended_settings
    from editing_app.web.methods import METHOD_LABELS, method_plan

    plans = {f: method_plan(f, "demo", latent=False) for f in METHOD_LABELS.values()}
    assert (
        plans["imagic"].stage == "imagic_demo"
        and plans["imagic"].edit_settings["guidance_scale"] == 3
    )
    assert plans["null_text_p2p"].stage_settings == {
        "num_inference_steps": 25,
        "num_inner_steps": 10,
    }
    assert plans["null_text_p2p"].edit_settings["blend_words"] == "auto"
    assert plans["direct_inversion"].stage is None
    assert plans["direct_inversion"].edit_settings["invert_with_source"] is True
    assert plans["direct_inversion"].edit_settings["num_inversion_steps"] == 25
    demo_blended = dict(o.split("=", 1) for o in blended_settings("demo", False))
    assert plans["blended"].method == demo_blended["method"] == "blended"
    assert plans["blended"].edit_settings["dilate"] == int(demo_blended["method.dilate"])
    assert plans["blended"].edit_settings["num_timesteps"] == int(
        demo_blended["method.num_timesteps"]
    )
    # Other models: the configs' defaults; Blended is Blended Latent Diffusion on latent models.
    assert method_plan("imagic", "sd15", latent=True).stage == "imagic"
    assert method_plan("blended", "sd15", latent=True).method == "blended_latent"


def test_slider_settings_per_method():
    from editing_app.web.session import parse_seeds, slider_settings

    values = dict(eta=0.8, seeds="0, 2", imagic_guidance=3, noise_lambda=0.4, di_guidance=5,
                  cross_replace=0.6, self_replace=0.3, reweight_word="", reweight_factor=2,
                  candidates=4)  # fmt: skip
    assert slider_settings("imagic", values) == {"eta": 0.8, "seeds": [0, 2], "guidance_scale": 3.0}
    assert slider_settings("direct_inversion", values) == {
        "noise_lambda": 0.4,
        "guidance_scale": 5.0,
    }
    assert "equalizer" not in slider_settings("null_text_p2p", values)
    reweighted = slider_settings("null_text_p2p", {**values, "reweight_word": " blue "})
    assert reweighted["equalizer"] == {"blue": 2.0} and reweighted["cross_replace_steps"] == 0.6
    assert slider_settings("blended", values) == {"num_candidates": 4, "num_augmentations": 4}
    assert slider_settings("blended_latent", values) == {"num_candidates": 4}
    assert parse_seeds(3) == [3]
    for bad in ("", "a", "-1", "1.5"):
        with pytest.raises(UserInputError, match="seeds"):
            parse_seeds(bad)


# ------------------------------------------------------------------------- a session
@pytest.fixture(scope="module")
def demo_model():
    from editing_app import api

    return api.load_model("demo", device="cpu")


@pytest.fixture
def session(tmp_path):
    from editing_app.web.session import Session

    uploads = tmp_path / "uploads"
    uploads.mkdir()
    shutil.copy(IMAGE, uploads / "photo.png")
    session = Session(tmp_path / "session", uploads, 1 << 20)
    session.set_photo(uploads / "photo.png")
    return session


def quick_imagic():
    from editing_app.web.methods import method_plan

    plan = method_plan("imagic", "demo", latent=False)
    stage = {"embed": {"num_steps": 3}, "finetune": {"num_steps": 3}}
    edit = {**plan.edit_settings, "num_inference_steps": 3}
    return replace(plan, stage_settings=stage, edit_settings=edit)


def test_a_session_trains_once_and_edits_from_memory(session, demo_model, monkeypatch):
    plan = quick_imagic()
    reports = []
    kwargs = dict(source_prompt="", target_prompt=SQUARE, seed=0)
    first = session.run(
        demo_model,
        plan,
        settings={"eta": 0.7, "seeds": [0]},
        report=lambda *r: reports.append(r),
        **kwargs,
    )
    assert first.trained and not first.reused and first.train_seconds > 0
    assert ("imagic_embed", 3, 3) in reports and ("imagic_finetune", 3, 3) in reports
    names = sorted(p.name for p in first.artifacts)
    assert names == ["imagic_embed.safetensors", "imagic_finetune.safetensors"]
    assert all(p.is_relative_to(session.folder) for p in first.artifacts)
    # A further edit trains nothing and reads no artifact file: the tensors are in memory.
    import editing.io.artifacts as artifacts

    def no_reading(*args, **kwargs):
        raise AssertionError("an artifact file was read again")

    monkeypatch.setattr(artifacts, "load_artifact", no_reading)
    second = session.run(demo_model, plan, settings={"eta": 0.9, "seeds": [0]}, **kwargs)
    assert not second.trained and second.reused and second.train_seconds == 0
    assert second.output.params[0]["eta"] == 0.9
    assert (second.folder / "edit.png").is_file() and second.folder != first.folder
    assert Image.open(second.folder / "edit.png").text["method"] == "imagic"


def test_cancel_ends_the_training_run_and_keeps_nothing(session, demo_model):
    from editing_app.web.session import Cancelled

    plan = quick_imagic()
    plan = replace(plan, stage_settings={"embed": {"num_steps": 50}, "finetune": {"num_steps": 50}})
    seen = []

    def report(stage, done, total):
        seen.append((stage, done))
        if done == 2:  # Cancel pressed during the embedding stage
            session.cancel()

    with pytest.raises(Cancelled):
        session.run(
            demo_model,
            plan,
            source_prompt="",
            target_prompt=SQUARE,
            seed=0,
            settings={},
            report=report,
        )
    assert max(done for _, done in seen) < 50
    assert not session.trained
    assert not (session.folder / "artifacts").exists() or not any(
        (session.folder / "artifacts").iterdir()
    )


def test_blended_edits_inside_a_painted_mask_only(session, demo_model):
    from editing_app.web.methods import method_plan
    from editing_app.web.uploads import mask_from_layers

    plan = method_plan("blended", "demo", latent=False)
    quick = {**plan.edit_settings, "num_timesteps": 4, "skip_timesteps": 1, "dilate": 0}
    plan = replace(plan, edit_settings=quick)
    layer = np.zeros((32, 32, 4), np.uint8)  # painted on the mask editor's copy of the photo
    layer[8:24, 8:24, 3] = 255
    mask = mask_from_layers([layer], session.folder / "inputs")
    settings = {"num_candidates": 1, "num_augmentations": 1}
    record = session.run(
        demo_model,
        plan,
        source_prompt="",
        target_prompt=SQUARE,
        seed=0,
        settings=settings,
        mask=mask,
    )
    assert not record.trained and record.artifacts == []
    edited = np.asarray(Image.open(record.folder / "edit_full.png").convert("RGB"))
    photo = np.asarray(Image.open(IMAGE).convert("RGB"))
    outside = np.ones(photo.shape[:2], bool)
    outside[8:24, 8:24] = False
    assert np.array_equal(edited[outside], photo[outside])  # the photo's own pixels outside
    assert not np.array_equal(edited[~outside], photo[~outside])


def test_the_sliders_start_at_the_plans_settings():
    pytest.importorskip("gradio", reason="the page needs the app extra")
    from editing_app.web.methods import METHOD_LABELS, method_plan
    from editing_app.web.page import _method_defaults

    def defaults(base_model, latent):
        return _method_defaults(
            {f: method_plan(f, base_model, latent) for f in METHOD_LABELS.values()}
        )

    demo = defaults("demo", False)  # make demo's settings
    assert (demo["eta"], demo["seeds"], demo["imagic_guidance"]) == (0.7, "0,1", 3.0)
    assert (demo["noise_lambda"], demo["di_steps"], demo["candidates"]) == (0.3, 25, 4)
    other = defaults("sd15", True)  # configs/method/*.yaml
    assert (other["seeds"], other["imagic_guidance"], other["di_steps"]) == ("0,1,2,3", 7.5, 100)
    assert other["candidates"] == 4  # Blended Latent Diffusion's


def test_every_slider_starts_inside_its_range():
    """A slider whose starting value lies outside [minimum, maximum] refuses every run (Gradio
    checks every input's bounds), whatever the method: on a pixel model other than the demo,
    Blended Diffusion's configs/method/blended.yaml asks for 64 candidates."""
    pytest.importorskip("gradio", reason="the page needs the app extra")
    from types import SimpleNamespace

    import gradio as gr

    from editing_app.web.page import build_page

    for base_model, latent in (("demo", False), ("adm256", False), ("sd15", True)):
        model = SimpleNamespace(diffusion=SimpleNamespace(is_latent=latent), device="cpu")
        page = build_page(model, base_model, sessions=None)
        sliders = [b for b in page.blocks.values() if isinstance(b, gr.Slider)]
        assert len(sliders) == 9
        for slider in sliders:
            assert slider.minimum <= slider.value <= slider.maximum, (base_model, slider.label)
            slider.preprocess(slider.value)  # what a run sends untouched is accepted


def test_an_indented_comment_of_the_auth_file_is_no_user(tmp_path):
    users = tmp_path / "users.txt"
    users.write_text("  # admin: ask ann\nann:one\n\t# bob:old\n")
    assert settings_of(host="10.0.0.2", auth=str(users)).auth == (("ann", "one"),)


def test_a_session_back_from_eviction_numbers_its_edits_after_those_on_disk(tmp_path):
    """The store keeps `capacity` sessions in memory; one dropped and asked for again gets its
    folder back and must not write its next edit over `edits/001-...` of before."""
    from editing_app.web.session import SessionStore

    store = SessionStore(tmp_path / "root", tmp_path / "uploads", 1 << 20, capacity=1)
    first = store.get("a")
    for name in ("001-imagic", "002-direct_inversion"):
        (first.folder / "edits" / name).mkdir(parents=True)
    first.edits = 2
    store.get("b")  # drops "a" from memory
    again = store.get("a")
    assert again is not first and again.folder == first.folder
    assert again.edits == 2


def test_the_session_root_must_hold_only_the_apps_files(tmp_path):
    """Every file under app.session_dir can be served, so a folder with other contents is refused
    before anything loads; a new folder and one the app wrote itself are accepted."""
    from editing_app.web.session import session_key

    root = tmp_path / "sessions"
    assert settings_of(session_dir=str(root)).session_dir == root
    (root / ".uploads").mkdir(parents=True)
    (root / session_key("browser")).mkdir()
    assert settings_of(session_dir=str(root)).session_dir == root
    (root / "notes.txt").write_text("private")
    with pytest.raises(UserInputError, match="holds 'notes.txt'"):
        settings_of(session_dir=str(root))
    with pytest.raises(UserInputError, match="is a file"):
        settings_of(session_dir=str(root / "notes.txt"))
    with pytest.raises(UserInputError, match="which the app did not write"):
        settings_of(session_dir=str(tmp_path))  # holds sessions/: a folder of the user's


def test_the_page_offers_only_the_methods_the_model_runs(tiny_sdxl_model, demo_model):
    """SDXL: every method, Blended as the latent one. A pixel text model: every method."""
    from editing_app.web.methods import METHOD_LABELS, method_plan, offered_methods

    def offered(model, base_model):
        latent = model.is_latent
        plans = {f: method_plan(f, base_model, latent) for f in METHOD_LABELS.values()}
        return offered_methods(plans, model), plans

    labels, plans = offered(tiny_sdxl_model, "sdxl")
    assert list(labels) == list(METHOD_LABELS)
    assert plans[labels["Blended Diffusion"]].method == "blended_latent"
    assert offered(demo_model.diffusion, "demo")[0] == METHOD_LABELS


def test_a_session_holds_only_the_latest_artifact_of_a_stage(session, demo_model):
    """A new seed trains again and replaces the stage's artifact in memory; both stay on disk."""
    plan = quick_imagic()
    kwargs = dict(source_prompt="", target_prompt=SQUARE, settings={"seeds": [0]})
    first = session.run(demo_model, plan, seed=0, **kwargs)
    second = session.run(demo_model, plan, seed=1, **kwargs)
    assert first.trained and second.trained
    assert list(session.trained) == [plan.stage]
    key, artifact = session.trained[plan.stage]
    assert key[-1] == 1 and sorted(artifact.paths) == sorted(second.artifacts)
    assert all(p.is_file() for p in first.artifacts + second.artifacts)
    assert {p.parent for p in first.artifacts} != {p.parent for p in second.artifacts}


def test_cancel_pressed_while_a_job_is_queued_cancels_that_job(session, demo_model):
    """A token per job, set by Cancel before the job starts: the job ends at once, training
    nothing; a job enqueued after the Cancel runs."""
    from editing_app.web.session import Cancelled

    plan = quick_imagic()
    kwargs = dict(source_prompt="", target_prompt=SQUARE, seed=0, settings={"seeds": [0]})
    session.enqueue()
    session.cancel()  # pressed while the job waits in the queue
    later = session.enqueue()  # a job enqueued after the Cancel
    reports = []
    with pytest.raises(Cancelled, match="before it started"):
        session.run(demo_model, plan, report=lambda *r: reports.append(r), **kwargs)
    assert reports == [] and not session.trained and not (session.folder / "artifacts").exists()
    assert not later.is_set()
    record = session.run(demo_model, plan, **kwargs)
    assert record.trained and list(session.trained) == [plan.stage]


def test_the_page_sweeps_gradios_upload_cache_and_queues_a_token_per_job(tmp_path, demo_model):
    """The Blocks deletes Gradio's stored uploads older than a day, hourly; Run and every slider
    first enqueue the job's cancel token outside the queue, then run the edit in the queue."""
    from editing_app.web.page import build_page
    from editing_app.web.session import SessionStore

    page = build_page(demo_model, "demo", SessionStore(tmp_path, tmp_path / ".uploads", 1 << 20, 2))
    assert page.delete_cache == (3600, 86400)
    fns = [block_fn for block_fn in page.fns.values()]
    enqueue = [f for f in fns if f.name == "on_enqueue"]
    edits = [f for f in fns if f.name == "edit"]
    assert len(enqueue) == len(edits) == 10  # Run and nine sliders
    assert not any(f.queue for f in enqueue) and all(f.queue for f in edits)
    assert [f.api_name for f in edits].count("run") == 1


def test_the_start_says_password_required_once_and_errors_are_one_status_line(monkeypatch, caplog):
    import logging

    import editing_app.commands.app as app_command
    import editing_app.web.server as server
    from editing_app.web.page import error_line

    settings = settings_of(host="0.0.0.0", auth="me:secret")
    monkeypatch.setattr(app_command, "build", lambda cfg, base_model: (None, settings))
    monkeypatch.setattr(server, "serve", lambda page, s, block=True: (None, "url", None))
    with caplog.at_level(logging.INFO, logger="app"):
        app_command.start(None, "demo", block=False)
    text = "\n".join(r.getMessage() for r in caplog.records if r.name == "app")
    assert text.count("password required") == 1 and "1 user(s)" in text
    assert error_line(UserInputError("seeds 'a' must be\n  whole numbers\n")) == (
        "error: seeds 'a' must be whole numbers"
    )
    assert error_line(RuntimeError("CUDA out of memory\nTried to allocate")) == (
        "error: RuntimeError: CUDA out of memory"
    )
