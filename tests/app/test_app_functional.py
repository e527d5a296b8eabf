"""The web app driven through its HTTP API (`gradio_client`), as the page drives it: upload the
example photo, run Direct Inversion, move lambda; the second edit reuses the session's inversion
and takes less time than the first. Errors come back as one line in the status, never a
traceback."""

from __future__ import annotations

import json
import struct
import zlib
from pathlib import Path

import pytest
from PIL import Image

gradio_client = pytest.importorskip("gradio_client", reason="the web app needs the app extra")

from demo_world.examples import EXAMPLES_DIR  # noqa: E402

EXAMPLE = json.loads((EXAMPLES_DIR / "examples.json").read_text())["red_circle"]


def run(client, photo, method="Direct Inversion", noise_lambda=0.3, **controls):
    """The page's Run with the example's prompts and the page's defaults elsewhere."""
    values = dict(
        photo_path=None if photo is None else gradio_client.handle_file(str(photo)),
        mask_value=None,
        mask_path=None,
        method_label=method,
        source_prompt=EXAMPLE["source_prompt"],
        target_prompt=EXAMPLE["target_prompts"][0],
        seed_value=0,
        eta_value=0.7,
        seeds_text="0",
        imagic_guidance_value=3,
        lambda_value=noise_lambda,
        di_guidance_value=3,
        di_steps_value=50,
        cross_value=0.8,
        self_value=0.4,
        word="",
        factor=1,
        candidates_value=2,
    )
    values.update(controls)
    return client.predict(**values, api_name="/run")


def status_of(outputs) -> str:
    return outputs[4]


@pytest.fixture(scope="module")
def client(app_server):
    url, _, _ = app_server
    return gradio_client.Client(url, verbose=False, download_files=False)


def test_direct_inversion_inverts_once_then_reedits_faster(client, app_server):
    _, sessions, _ = app_server
    photo = EXAMPLES_DIR / EXAMPLE["image"]
    # 20 sampling steps from the 50-step inversion: the inversion is most of the first edit's time
    first = run(client, photo, noise_lambda=0.3, di_steps_value=20)
    result, gallery, files, artifact, status, details = first
    assert status.startswith("done"), status
    assert details["method"] == "direct_inversion" and not details["reused"]
    second = run(client, photo, noise_lambda=0.6, di_steps_value=20)
    assert second[4].startswith("done"), second[4]
    again = second[5]
    assert again["reused"], again  # the inversion cache of the session was read, not rewritten
    assert again["seconds"] < details["seconds"], (details, again)
    # The files: edit.py's, inside the session folder, the PNG with its metadata.
    from editing_app.web.session import session_key

    session = sessions / session_key(client.session_hash)
    edits = sorted((session / "edits").iterdir())
    assert [e.name for e in edits] == ["001-direct_inversion", "002-direct_inversion"]
    png = Image.open(edits[1] / "edit.png")
    assert png.text["method"] == "direct_inversion" and "0.6" in png.text["parameters"] + str(
        png.text
    )
    assert (session / "direct_inversion" / "direct_inversion.safetensors").is_file()

    def names(files):
        return sorted(Path(f["path"] if isinstance(f, dict) else f).name for f in files)

    assert names(second[2]) == ["edit.png", "grid.png"]
    assert names(artifact) == ["direct_inversion.safetensors"]  # offered once, when made
    assert len(second[1]) == 2  # the grid, then the result


def test_errors_are_one_line_in_the_status(client, tmp_path):
    status = status_of(run(client, None))
    assert status == "error: upload a photo first"

    # A decompression bomb: a PNG header that claims 40000 x 40000 pixels, refused from it.
    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    bomb = tmp_path / "bomb.png"
    bomb.write_bytes(
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", struct.pack(">IIBBBBB", 40000, 40000, 8, 0, 0, 0, 0))
        + chunk(b"IDAT", zlib.compress(b"\0" * 64))
        + chunk(b"IEND", b"")
    )
    status = status_of(run(client, bomb))
    assert (
        status
        == "error: photo bomb.png has more than 536870912 pixels; downscale it to at most 268435456 pixels (2^28)"
    )
    # Blended Diffusion without a mask, and a bad seed list for Imagic: named in one line.
    status = status_of(run(client, EXAMPLES_DIR / EXAMPLE["image"], method="Blended Diffusion"))
    assert status == "error: Blended Diffusion edits inside a mask: paint or upload one"
    status = status_of(
        run(client, EXAMPLES_DIR / EXAMPLE["image"], method="Imagic", seeds_text="a,b")
    )
    assert status.startswith("error: seeds 'a,b'")


def test_jobs_of_two_sessions_run_one_at_a_time(app_server):
    url, _, _ = app_server
    clients = [gradio_client.Client(url, verbose=False, download_files=False) for _ in range(2)]
    photo = gradio_client.handle_file(str(EXAMPLES_DIR / EXAMPLE["image"]))
    jobs = [
        c.submit(
            photo,
            None,
            None,
            "Direct Inversion",
            EXAMPLE["source_prompt"],
            EXAMPLE["target_prompts"][0],
            0,
            0.7,
            "0",
            3,
            0.3,
            3,
            10,
            0.8,
            0.4,
            "",
            1,
            2,
            api_name="/run",
        )  # fmt: skip
        for c in clients
    ]
    first, second = sorted((job.result()[5] for job in jobs), key=lambda d: d["started"])
    assert first["finished"] <= second["started"], (first, second)  # queued, never together


def test_blended_edits_inside_an_uploaded_mask(client):
    mask = EXAMPLES_DIR / EXAMPLE["mask"]
    outputs = run(
        client,
        EXAMPLES_DIR / EXAMPLE["image"],
        method="Blended Diffusion",
        target_prompt=EXAMPLE["target_prompts"][1],
        mask_path=gradio_client.handle_file(str(mask)),
        candidates_value=1,
    )
    assert status_of(outputs).startswith("done"), status_of(outputs)
    assert outputs[5]["method"] == "blended" and outputs[5]["results"] == 1
    edited = Image.open(Path(outputs[0]["path"] if isinstance(outputs[0], dict) else outputs[0]))
    assert edited.text["method"] == "blended"
