"""Image and mask loading: every PIL mode converted explicitly, bad files refused clearly."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from editing.errors import UserInputError
from editing.io.images import load_image, load_mask, to_rgb, to_uint8


@pytest.mark.parametrize("mode", ["L", "P", "RGBA", "LA", "CMYK", "I;16", "I", "F", "1"])
def test_every_mode_is_converted_to_rgb(tmp_path, mode):
    base = Image.new("RGB", (40, 30), (120, 60, 200))
    img = base.convert(mode) if mode not in ("I;16", "I", "F") else Image.new(mode, (40, 30))
    if mode == "I;16":
        img = Image.fromarray(np.full((30, 40), 65535, dtype=np.uint16))
    path = tmp_path / f"x.{'tiff' if mode in ('CMYK', 'I', 'F', 'I;16') else 'png'}"
    img.save(path)
    loaded = load_image(path, 16)
    assert loaded.pixels.shape == (1, 3, 16, 16)
    assert loaded.pixels.dtype == torch.float32
    assert loaded.pixels.min() >= -1 and loaded.pixels.max() <= 1
    if mode == "I;16":  # 16-bit white stays white (scaled, not clipped garbage)
        assert loaded.pixels.min() == 1.0


def test_rgba_is_composited_over_white():
    rgba = Image.new("RGBA", (8, 8), (255, 0, 0, 0))  # fully transparent red
    assert to_rgb(rgba).getpixel((0, 0)) == (255, 255, 255)


def test_resize_policy_shorter_side_then_centre_crop(tmp_path):
    arr = np.zeros((20, 60, 3), dtype=np.uint8)
    arr[:, 20:40] = 255  # the centre third is white
    Image.fromarray(arr).save(tmp_path / "wide.png")
    loaded = load_image(tmp_path / "wide.png", 20)
    out = to_uint8(loaded.pixels)
    assert out.shape == (20, 20, 3) and out.min() >= 250  # only the centre survives the crop
    assert loaded.original_size == (60, 20)


def test_content_hash_depends_on_pixels_not_path(tmp_path):
    a, b = tmp_path / "a.png", tmp_path / "b.png"
    Image.new("RGB", (16, 16), (1, 2, 3)).save(a)
    Image.new("RGB", (16, 16), (1, 2, 3)).save(b)
    assert load_image(a, 16).sha256 == load_image(b, 16).sha256
    Image.new("RGB", (16, 16), (1, 2, 4)).save(b)
    assert load_image(a, 16).sha256 != load_image(b, 16).sha256


def test_bad_images_are_refused(tmp_path):
    with pytest.raises(UserInputError, match="image file not found"):
        load_image(tmp_path / "missing.png", 32)
    (tmp_path / "corrupt.png").write_bytes(b"\x89PNG\r\n\x1a\n garbage")
    with pytest.raises(UserInputError, match="cannot read image"):
        load_image(tmp_path / "corrupt.png", 32)
    Image.new("RGB", (4, 40)).save(tmp_path / "thin.png")
    with pytest.raises(UserInputError, match="only 4x40 pixels"):
        load_image(tmp_path / "thin.png", 32)


def test_huge_images_are_refused_before_decoding(tmp_path, monkeypatch):
    import editing.io.images as images

    monkeypatch.setattr(images, "MAX_PIXELS", 1000)
    Image.new("RGB", (40, 40)).save(tmp_path / "big.png")
    with pytest.raises(UserInputError, match="downscale it"):
        load_image(tmp_path / "big.png", 32)


def test_masks(tmp_path):
    Image.new("RGB", (40, 20)).save(tmp_path / "img.png")
    image = load_image(tmp_path / "img.png", 16)
    m = np.zeros((20, 40), dtype=np.uint8)
    m[:, 20:] = 255
    Image.fromarray(m).save(tmp_path / "mask.png")
    mask = load_mask(tmp_path / "mask.png", image, 16)
    assert mask.shape == (1, 1, 16, 16) and set(mask.unique().tolist()) == {0.0, 1.0}
    assert mask[0, 0, :, :8].sum() == 0 and mask[0, 0, :, 8:].min() == 1  # same crop as the image
    # transparency masks use alpha
    rgba = np.zeros((20, 40, 4), dtype=np.uint8)
    rgba[:, :20, 3] = 255
    Image.fromarray(rgba, "RGBA").save(tmp_path / "alpha.png")
    assert load_mask(tmp_path / "alpha.png", image, 16)[0, 0, :, :8].min() == 1
    Image.new("L", (20, 20)).save(tmp_path / "small.png")
    with pytest.raises(UserInputError, match="mask .* is 20x20 but image .* is 40x20"):
        load_mask(tmp_path / "small.png", image, 16)


def test_float_images_need_an_unambiguous_range(tmp_path):
    Image.fromarray(np.full((20, 20), 0.5, dtype=np.float32), "F").save(tmp_path / "ok.tiff")
    assert load_image(tmp_path / "ok.tiff", 16).pixels.abs().max() < 0.01  # 0.5 -> mid gray
    Image.fromarray(np.full((20, 20), 200.0, dtype=np.float32), "F").save(tmp_path / "bad.tiff")
    with pytest.raises(UserInputError, match="outside \\[0, 1\\]"):
        load_image(tmp_path / "bad.tiff", 16)


def _png(path, width: int, height: int, rows: bool = False):
    """A 1-bit grayscale PNG declaring width x height; with `rows`, all its (zero) pixel rows.

    Without rows its IDAT is empty: the header is valid, decoding fails (truncated).
    """
    import struct
    import zlib

    def chunk(kind: bytes, data: bytes) -> bytes:
        crc = zlib.crc32(kind + data) & 0xFFFFFFFF
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", crc)

    ihdr = struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)
    data = zlib.compress(b"\x00" * ((width + 7) // 8 + 1) * height, 1) if rows else b""
    path.write_bytes(
        b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", data) + chunk(b"IEND", b"")
    )
    return path


def test_a_directory_is_named_as_a_directory(tmp_path):
    from editing.io.images import check_image_file

    with pytest.raises(UserInputError, match=r"image=.* is a directory, not an image file"):
        check_image_file(tmp_path)
    with pytest.raises(UserInputError, match=r"mask=.* is a directory"):
        load_mask(tmp_path, None, 32)


def test_the_project_limit_of_2_28_pixels_is_the_only_one(tmp_path):
    """12000x12000 (1.44e8 < 2^28 px) passes, although PIL's default guard is 8.9e7 px."""
    from editing.io.images import MAX_PIXELS, check_image_file, read_header

    assert MAX_PIXELS == 2**28
    img = read_header(_png(tmp_path / "12k.png", 12000, 12000), "image")
    assert img.size == (12000, 12000)
    check_image_file(_png(tmp_path / "12k_rows.png", 12000, 12000, rows=True))  # decodes it
    # 17 * 15790321 = 2^28 + 1 pixels: refused with the project's message, not PIL's
    with pytest.raises(UserInputError, match=r"is 17x15790321; downscale it to at most 268435456"):
        check_image_file(_png(tmp_path / "over.png", 17, 15790321))
    # far over (PIL's own guard fires at twice the limit): still the project's message
    with pytest.raises(UserInputError, match=r"downscale it to at most 268435456 pixels"):
        check_image_file(_png(tmp_path / "far.png", 30000, 30000))


def test_a_pil_image_is_preprocessed_like_its_file(tmp_path):
    """The Python API's PIL inputs: the same checks, orientation, resize, crop and content hash."""
    rng = np.random.default_rng(0)
    rgb = Image.fromarray(rng.integers(0, 256, (40, 56, 3), dtype=np.uint8))
    exif = Image.Exif()
    exif[0x0112] = 6  # rotated: the file and the PIL image are both turned upright
    rgb.save(tmp_path / "photo.jpg", exif=exif, quality=95)
    mask = Image.new("L", (40, 56), 0)  # the size of the upright image
    mask.paste(255, (10, 10, 30, 30))
    mask.save(tmp_path / "mask.png")
    with Image.open(tmp_path / "photo.jpg") as opened:
        from_pil = load_image(opened, 32)
        assert opened.size == (56, 40)  # not modified
    from_file = load_image(tmp_path / "photo.jpg", 32)
    assert from_pil.sha256 == from_file.sha256 and from_pil.original_size == (40, 56)
    assert torch.equal(from_pil.pixels, from_file.pixels)
    assert torch.equal(
        load_mask(mask, from_pil, 32), load_mask(tmp_path / "mask.png", from_file, 32)
    )
    with pytest.raises(UserInputError, match="at least 8x8"):
        load_image(Image.new("RGB", (4, 30)), 32)
    with pytest.raises(UserInputError, match="give a mask of the image's size"):
        load_mask(Image.new("L", (10, 10)), from_pil, 32)


def test_the_pixel_limit_is_checked_from_the_header_without_touching_warning_filters(
    tmp_path, monkeypatch
):
    """Two threads read over-limit headers at once under the web server's filter (PIL's warning
    an error): both are refused in one line, nothing is decoded, and the filter stays first the
    whole time, so a third thread decoding an image meanwhile keeps PIL's guard."""
    import threading
    import warnings

    from PIL import ImageFile

    from editing.io import images

    over = _png(tmp_path / "over.png", 17, 15790321)  # 2^28 + 1 pixels: PIL warns
    far = _png(tmp_path / "far.png", 30000, 30000)  # over twice the limit: PIL raises
    decoded = []
    monkeypatch.setattr(ImageFile.ImageFile, "load", lambda self: decoded.append(self))
    opened = Image.open
    barrier = threading.Barrier(2)
    guard_first = []  # whether the server's filter was in effect as each header was read

    def spying_open(*args, **kwargs):
        guard_first.append(warnings.filters[0] is guard)
        barrier.wait(timeout=10)  # both threads inside the header read together
        return opened(*args, **kwargs)

    monkeypatch.setattr(Image, "open", spying_open)
    errors = {}

    def read(name, path):
        try:
            images.read_header(path, "photo")
        except UserInputError as err:
            errors[name] = str(err)

    with warnings.catch_warnings():
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        guard = warnings.filters[0]
        threads = [threading.Thread(target=read, args=a) for a in (("over", over), ("far", far))]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=30)
        assert warnings.filters[0] is guard
    assert guard_first == [True, True]
    assert errors["over"] == (
        f"photo {over} has 268435457 pixels; downscale it to at most 268435456 pixels (2^28)"
    )
    assert errors["far"] == (
        f"photo {far} has more than 536870912 pixels; downscale it to at most 268435456 pixels "
        "(2^28)"
    )
    assert decoded == []
