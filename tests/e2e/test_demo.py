"""`make demo`'s pipeline at reduced steps: every method runs and the comparison grid is written."""

from __future__ import annotations

from editing_app.commands import demo


def test_demo_pipeline_quick(tmp_path, capsys):
    assert demo.main(["--base-model", "tiny", "--quick", "--output", str(tmp_path / "out")]) == 0
    out = tmp_path / "out"
    for method in ("imagic", "null_text_p2p", "direct_inversion", "blended", demo.WIDE_FOLDER):
        assert (out / method / "edit.png").is_file(), method
        assert (out / method / "grid.png").is_file(), method
    # the 4:3 photo: a non-square working size, and edit_full.png at the photo's own 48x36
    from PIL import Image

    wide = out / demo.WIDE_FOLDER
    width, height = Image.open(wide / "edit.png").size
    assert width > height
    assert Image.open(wide / "edit_full.png").size == (48, 36)
    assert (out / "comparison.png").is_file()
    printed = capsys.readouterr().out
    assert "comparison grid" in printed and "finished in" in printed
