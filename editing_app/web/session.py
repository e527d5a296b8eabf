"""A browser session: its folder, its photo and mask, and the artifacts it trained, in memory.

Invert (or fine-tune) once, edit many times: the first edit of a method on a photo runs the
method's training stage (Imagic's embedding + fine-tune, null-text inversion) through
`editing_app.api.train` into the session folder and keeps the loaded artifact in memory, keyed by
everything it depends on (stage, photo content, the prompt the stage reads, seed): the latest one
per stage only (a new photo, prompt or seed replaces it in memory; its files stay on disk for
edit.py, so a full fine-tune does not pile up gigabytes per session). Every later
edit with other slider values edits from them (`api.edit(..., artifact=...)`). Direct Inversion's
DDIM inversion is its content-keyed cache file (`editing.inversion.cache`) in the session folder,
so a later edit reuses it too. Each edit is saved as edit.py saves it (`<folder>/edits/NNN-<method>/`:
edit.png with its metadata, samples/, grid.png, config.yaml), and the artifacts lie in their own
folders, so `edit.py checkpoint_dir=<that folder>` edits from them later.

Cancel reaches every job of the session that is queued or running when it is pressed: each job
gets its own token (`threading.Event`) when it is enqueued (`Session.enqueue`, run outside the
queue as the button is pressed), takes the oldest queued one when it starts (`Session.job`), and
ends at once, before any work, when its token is already set; a running training stage stops at
its next step. The session's jobs start in the order they were enqueued (one queue per device),
and every token queued before a Cancel is set by it, so a job enqueued after a Cancel is not
cancelled by it.

Nothing outside the session folder is read or written: uploads are copied in first
(`editing_app.web.uploads`).
"""

from __future__ import annotations

import hashlib
import shutil
import threading
import time
from collections import OrderedDict, deque
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from editing.errors import UserInputError
from editing_app import api
from editing_app.web.jobs import Cancelled, StageReporter
from editing_app.web.methods import MethodPlan
from editing_app.web.settings import SESSION_KEY_LENGTH
from editing_app.web.uploads import accept_upload, mask_from_layers, preview

__all__ = [
    "Cancelled",
    "EditRecord",
    "Session",
    "SessionStore",
    "parse_seeds",
    "session_key",
    "slider_settings",
]

Report = Callable[[str, int, int | None], None]

INVERSION_FOLDER = "direct_inversion"
"""Where Direct Inversion's inversion cache of the session lives (its checkpoint_dir)."""


def parse_seeds(text: str | int | float | None) -> list[int]:
    """`0,1,2` (or one number) as a list of seeds >= 0."""
    parts = [p for p in str(text if text is not None else "").replace(" ", "").split(",") if p]
    try:
        seeds = [int(p) for p in parts]
    except ValueError:
        raise UserInputError(
            f"seeds {text!r} must be whole numbers separated by commas, e.g. 0,1"
        ) from None
    if not seeds or min(seeds) < 0:
        raise UserInputError(f"seeds {text!r}: give one or more whole numbers >= 0, e.g. 0,1")
    return seeds


def slider_settings(method: str, values: Mapping[str, Any]) -> dict[str, Any]:
    """The `method.*` settings the page's controls set for `method` (the others are ignored).

    values: `eta`, `seeds` (text), `imagic_guidance`; `noise_lambda`, `di_guidance`;
    `cross_replace`, `self_replace`, `reweight_word`, `reweight_factor`; `candidates`.
    """
    if method == "imagic":
        return {
            "eta": float(values["eta"]),
            "seeds": parse_seeds(values["seeds"]),
            "guidance_scale": float(values["imagic_guidance"]),
        }
    if method == "direct_inversion":
        return {
            "noise_lambda": float(values["noise_lambda"]),
            "guidance_scale": float(values["di_guidance"]),
        }
    if method == "null_text_p2p":
        settings = {
            "cross_replace_steps": float(values["cross_replace"]),
            "self_replace_steps": float(values["self_replace"]),
        }
        word = str(values.get("reweight_word") or "").strip()
        if word:
            settings["equalizer"] = {word: float(values["reweight_factor"])}
        return settings
    if method in ("blended", "blended_latent"):
        count = int(values["candidates"])
        settings = {"num_candidates": count}
        if method == "blended":
            settings["num_augmentations"] = count
        return settings
    return {}


@dataclass
class EditRecord:
    """One edit of the page.

    Attributes:
        output: the results (`api.EditOutput`).
        folder: where edit.py's files of this edit were written.
        trained: whether this edit ran the training stage (False: it reused the session's).
        reused: whether the stage's artifact or the cached inversion was reused.
        train_seconds, edit_seconds: the time of each part (training 0 when reused).
        artifacts: the artifact files the edit read (downloadable; edit.py's checkpoint_dir).
    """

    output: api.EditOutput
    folder: Path
    trained: bool
    reused: bool
    train_seconds: float
    edit_seconds: float
    artifacts: list[Path] = field(default_factory=list)

    @property
    def seconds(self) -> float:
        return self.train_seconds + self.edit_seconds

    def details(self) -> dict[str, Any]:
        """What the page shows under the result: the times and what was reused."""
        return {
            "method": self.output.method,
            "seconds": round(self.seconds, 2),
            "train_seconds": round(self.train_seconds, 2),
            "edit_seconds": round(self.edit_seconds, 2),
            "trained": self.trained,
            "reused": self.reused,
            "results": len(self.output.images),
            "folder": self.folder.name,
        }


class Session:
    """One browser session's state; every file it touches lies under `folder`."""

    def __init__(self, folder: Path, upload_root: Path, max_bytes: int) -> None:
        self.folder = folder
        self.upload_root = upload_root
        self.max_bytes = max_bytes
        self._queued: deque[threading.Event] = deque()  # the tokens of queued jobs, oldest first
        self._running: set[threading.Event] = set()
        self._jobs_lock = threading.Lock()
        self.photo: Path | None = None
        self.trained: dict[str, tuple[tuple, api.TrainedArtifacts]] = {}  # stage: (key, artifact)
        self.edits = _edits_on_disk(folder / "edits")  # a session back from eviction goes on
        self.offered: list[Path] = []  # the artifact files the page offers for download now

    # --------------------------------------------------------------------------- inputs
    def set_photo(self, upload: str | Path | None) -> Path | None:
        """Check and copy the uploaded photo (None clears it); returns the session's copy."""
        self.photo = None if upload is None else self._accept(upload, "photo")
        return self.photo

    def photo_preview(self) -> Path | None:
        """The photo at mask-editor size (see `uploads.preview`)."""
        return None if self.photo is None else preview(self.photo, self.folder / "inputs")

    def mask(self, upload: str | Path | None, layers: list[np.ndarray] | None) -> Path | None:
        """The mask of the next edit: an uploaded mask file, else what was painted, else None."""
        if upload is not None:
            return self._accept(upload, "mask")
        return mask_from_layers(layers, self.folder / "inputs")

    def _accept(self, upload: str | Path, what: str) -> Path:
        return accept_upload(upload, what, self.upload_root, self.folder / "inputs", self.max_bytes)

    # ------------------------------------------------------------------------------ jobs
    def enqueue(self) -> threading.Event:
        """A new job's cancel token, taken by the next job that starts (`job`)."""
        token = threading.Event()
        with self._jobs_lock:
            self._queued.append(token)
        return token

    @contextmanager
    def job(self) -> Iterator[threading.Event]:
        """A starting job's token: the oldest queued one (a fresh one when none was enqueued, e.g.
        a call of the HTTP API), held as running until the job ends."""
        with self._jobs_lock:
            token = self._queued.popleft() if self._queued else threading.Event()
            self._running.add(token)
        try:
            yield token
        finally:
            with self._jobs_lock:
                self._running.discard(token)

    def cancel(self) -> None:
        """Cancel every job of the session queued or running now."""
        with self._jobs_lock:
            for token in (*self._queued, *self._running):
                token.set()

    # ----------------------------------------------------------------------------- edits
    def run(
        self,
        model: api.Model,
        plan: MethodPlan,
        *,
        source_prompt: str,
        target_prompt: str,
        seed: int,
        settings: Mapping[str, Any],
        mask: Path | None = None,
        report: Report | None = None,
        token: threading.Event | None = None,
    ) -> EditRecord:
        """Train the plan's stage unless this session holds its artifact, then edit.

        token: this job's cancel token (`job`); None: the job takes one itself.

        Raises:
            UserInputError: no photo, a bad prompt or setting (the message names it).
            Cancelled: Cancel was pressed before the job started, or during the training stage
                (nothing is kept of it).
        """
        if token is None:
            with self.job() as token:
                return self.run(
                    model,
                    plan,
                    source_prompt=source_prompt,
                    target_prompt=target_prompt,
                    seed=seed,
                    settings=settings,
                    mask=mask,
                    report=report,
                    token=token,
                )
        if token.is_set():
            raise Cancelled("the job was cancelled before it started")
        photo = self.photo  # this run's photo, whatever is uploaded meanwhile
        if photo is None:
            raise UserInputError("upload a photo first")
        report = report or (lambda stage, done, total: None)
        artifact, trained, train_seconds = self._artifact(
            model, plan, photo, source_prompt, target_prompt, seed, report, token
        )
        edit_settings = {**plan.edit_settings, **settings}
        checkpoint_dir = None
        cache = self.folder / INVERSION_FOLDER / f"{plan.method}.safetensors"
        before = _stamp(cache)
        if plan.method == "direct_inversion":
            checkpoint_dir = cache.parent
            cache.parent.mkdir(parents=True, exist_ok=True)
        report("edit", 0, None)
        start = time.perf_counter()
        output = api.edit(
            model,
            plan.method,
            photo,
            mask=mask,
            source_prompt=source_prompt,
            target_prompt=target_prompt,
            seed=seed,
            artifact=artifact,
            checkpoint_dir=checkpoint_dir,
            **edit_settings,
        )
        edit_seconds = time.perf_counter() - start
        self.edits += 1
        folder = self.folder / "edits" / f"{self.edits:03d}-{plan.method}"
        output.save(folder)
        if checkpoint_dir is not None:
            reused = before is not None and _stamp(cache) == before
            artifacts = [cache]
        else:
            reused = artifact is not None and not trained
            artifacts = [a.path for a in artifact.artifacts.values()] if artifact else []
        return EditRecord(output, folder, trained, reused, train_seconds, edit_seconds, artifacts)

    def _artifact(
        self,
        model: api.Model,
        plan: MethodPlan,
        photo: Path,
        source_prompt: str,
        target_prompt: str,
        seed: int,
        report: Report,
        token: threading.Event,
    ) -> tuple[api.TrainedArtifacts | None, bool, float]:
        """(the plan's stage artifact, whether it was trained now, seconds) or (None, False, 0)."""
        if plan.stage is None:
            return None, False, 0.0
        prompt = source_prompt if plan.method == "null_text_p2p" else target_prompt
        key = (plan.stage, repr(plan.stage_settings), photo.name, prompt, int(seed))
        held = self.trained.get(plan.stage)
        if held is not None and held[0] == key:
            return held[1], False, 0.0
        digest = hashlib.sha256(repr(key).encode()).hexdigest()[:12]
        folder = self.folder / "artifacts" / f"{plan.stage}-{digest}"
        if folder.exists():
            shutil.rmtree(folder)
        start = time.perf_counter()
        self.trained.pop(plan.stage, None)  # freed before the new one is trained
        try:
            artifact = api.train(
                model,
                plan.stage,
                photo,
                source_prompt=source_prompt if plan.method == "null_text_p2p" else "",
                target_prompt=target_prompt if plan.method != "null_text_p2p" else "",
                seed=seed,
                output_dir=folder,
                callbacks=[StageReporter(report, token)],
                **plan.stage_settings,
            )
        except BaseException:
            shutil.rmtree(folder, ignore_errors=True)
            raise
        self.trained[plan.stage] = (key, artifact)  # the stage's previous artifact is dropped
        return artifact, True, time.perf_counter() - start


def _edits_on_disk(folder: Path) -> int:
    """The highest NNN of the `NNN-<method>` edit folders under `folder` (0 when none)."""
    heads = (p.name.split("-", 1)[0] for p in folder.glob("*-*") if p.is_dir())
    numbers = [int(head) for head in heads if head.isdigit()]
    return max(numbers, default=0)


def _stamp(path: Path) -> tuple[int, int] | None:
    """(mtime_ns, size) of a file, None when it does not exist: a rewritten cache changes it."""
    try:
        stat = path.stat()
    except FileNotFoundError:
        return None
    return stat.st_mtime_ns, stat.st_size


def session_key(session_id: str | None) -> str:
    """The folder name of a session: a hash of the id its browser sent."""
    digest = hashlib.sha256(str(session_id or "anonymous").encode()).hexdigest()
    return digest[:SESSION_KEY_LENGTH]


class SessionStore:
    """The sessions of the server by Gradio session id, the `capacity` most recent kept.

    A session's folder is `root/<sha256 of its id>`: the id comes from the browser, so it never
    becomes a path itself. A dropped session's folder stays on disk (its artifacts remain usable
    by edit.py); only its memory is freed.
    """

    def __init__(self, root: Path, upload_root: Path, max_bytes: int, capacity: int) -> None:
        self.root = root
        self.upload_root = upload_root
        self.max_bytes = max_bytes
        self.capacity = capacity
        self._sessions: OrderedDict[str, Session] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, session_id: str | None) -> Session:
        key = session_key(session_id)
        with self._lock:
            if key not in self._sessions:
                self._sessions[key] = Session(self.root / key, self.upload_root, self.max_bytes)
                while len(self._sessions) > self.capacity:
                    self._sessions.popitem(last=False)
            self._sessions.move_to_end(key)
            return self._sessions[key]
