"""Lightning checkpoints are written beside their target: a failed write keeps the old one."""

from __future__ import annotations

import os

import pytest
import torch

import callbacks.atomic_checkpoint as atomic_checkpoint
from callbacks.atomic_checkpoint import AtomicCheckpointIO
from editing.errors import UserInputError
from editing.io.checkpoints import load_checkpoint


def test_a_full_disk_keeps_the_previous_checkpoint_and_no_temp_file(tmp_path, monkeypatch):
    path = tmp_path / "last.ckpt"
    io = AtomicCheckpointIO()
    io.save_checkpoint({"global_step": 1, "state_dict": {"w": torch.ones(2)}}, path)
    before = path.read_bytes()
    real_save = torch.save

    def full_disk(obj, f):
        real_save(obj, f)
        with open(f, "r+b") as fh:  # what a full disk leaves: a truncated file
            fh.truncate(10)
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(atomic_checkpoint.torch, "save", full_disk)
    with pytest.raises(OSError, match="No space"):
        io.save_checkpoint({"global_step": 2, "state_dict": {"w": torch.zeros(2)}}, path)
    monkeypatch.undo()
    assert path.read_bytes() == before
    assert os.listdir(tmp_path) == ["last.ckpt"]
    assert load_checkpoint(path)["global_step"] == 1


@pytest.mark.parametrize("content", [b"", b"\x80\x02 not a whole pickle", b"PK\x03\x04"])
def test_an_unreadable_checkpoint_is_one_line_naming_the_file(tmp_path, content):
    path = tmp_path / "last.ckpt"
    path.write_bytes(content)
    with pytest.raises(UserInputError) as err:
        load_checkpoint(path, fix="delete it or run with resume=false")
    message = str(err.value)
    assert str(path) in message and message.endswith("delete it or run with resume=false")
    assert "\n" not in message
