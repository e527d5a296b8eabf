"""resume=true continues from the newest of Lightning's last*.ckpt files."""

from __future__ import annotations

import os

from editing_app.training import latest_checkpoint


def test_latest_checkpoint_prefers_the_newest_last_file(tmp_path):
    assert latest_checkpoint(tmp_path) == tmp_path / "last.ckpt"  # nothing yet
    (tmp_path / "last.ckpt").write_bytes(b"old")
    (tmp_path / "step100.ckpt").write_bytes(b"not a last checkpoint")
    assert latest_checkpoint(tmp_path) == tmp_path / "last.ckpt"
    (tmp_path / "last-v1.ckpt").write_bytes(b"new")
    os.utime(tmp_path / "last.ckpt", (1_000_000, 1_000_000))
    assert latest_checkpoint(tmp_path) == tmp_path / "last-v1.ckpt"
