"""`python -m editing_app.commands.export_unet`: the fine-tuned UNet as a diffusers folder that
`UNet2DConditionModel.from_pretrained` loads with the fine-tune's outputs; bad inputs refused in
one line with nothing written."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from diffusers import UNet2DConditionModel
from helpers import fit_stage
from PIL import Image
from safetensors.torch import load_file
from test_train_edit_cli import run

from demo_world.tiny import build_tiny_model
from editing.errors import UserInputError
from editing.io.edit_inputs import Inputs
from editing.io.images import load_image
from editing_app.commands.export_unet import export_unet, parse_arguments
from lightning_modules.imagic import ImagicEmbedStage, ImagicFinetuneStage


def _finetune(folder, mode: str) -> ImagicFinetuneStage:
    image = folder / "input.png"
    Image.new("RGB", (40, 48), (30, 200, 40)).save(image)

    def inputs():
        return Inputs(
            image=load_image(image, 32),
            target_prompt="a green square",
            output_dir=folder,
            checkpoint_dir=folder,
            seed=0,
        )

    model = build_tiny_model()
    embed = ImagicEmbedStage(model, inputs(), num_steps=2, lr=1e-2)
    fit_stage(embed, model, embed.inputs, 2)
    embed.export(folder)
    lr = 1e-3 if mode == "full" else 1e-2
    stage = ImagicFinetuneStage(model, inputs(), num_steps=2, lr=lr, finetune_mode=mode)
    fit_stage(stage, model, stage.inputs, 2)
    stage.export(folder)
    return stage


@pytest.fixture(scope="module")
def full_run(tmp_path_factory):
    folder = tmp_path_factory.mktemp("full")
    return _finetune(folder, "full"), folder


def _unet_out(unet, e: torch.Tensor) -> torch.Tensor:
    x = torch.randn(1, 4, 8, 8, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        return unet.eval()(x, torch.tensor([400]), encoder_hidden_states=e).sample


def _export(checkpoint_dir, out, *extra: str):
    args = [f"checkpoint_dir={checkpoint_dir}", f"out={out}", "base_model=tiny", *extra]
    return export_unet(parse_arguments(args))


def test_a_full_fine_tune_exports_and_reloads_with_the_same_outputs(full_run, tmp_path):
    stage, ckpt = full_run
    out = _export(ckpt, tmp_path / "unet")
    assert sorted(p.name for p in out.iterdir()) == [
        "config.json",
        "diffusion_pytorch_model.safetensors",
    ]
    reloaded = UNet2DConditionModel.from_pretrained(out)
    trained = stage.model.unet.state_dict()
    assert reloaded.state_dict().keys() == trained.keys()
    assert all(torch.equal(v, trained[k]) for k, v in reloaded.state_dict().items())
    # Bit-identical weights; the outputs differ in the last bits only because tensors read from a
    # file sit at other memory alignments (other vector kernels), as any from_pretrained load does.
    want = _unet_out(stage.model.unet, stage.e_opt)
    torch.testing.assert_close(_unet_out(reloaded, stage.e_opt), want, rtol=1e-5, atol=1e-6)
    base = _unet_out(build_tiny_model().unet, stage.e_opt)
    assert (want - base).abs().max() > 1e-4, "the fine-tune must have moved the UNet"
    # Exporting again replaces the earlier export; a dtype is honoured.
    _export(ckpt, out, "dtype=float16")
    stored = load_file(str(out / "diffusion_pytorch_model.safetensors"))
    assert {v.dtype for v in stored.values()} == {torch.float16}
    assert not [p for p in out.parent.iterdir() if p.name.startswith(".")], "no staging left"


def test_a_lora_fine_tune_exports_fused(tmp_path):
    stage = _finetune(tmp_path, "lora")
    reloaded = UNet2DConditionModel.from_pretrained(_export(tmp_path, tmp_path / "unet"))
    want = _unet_out(stage.model.unet, stage.e_opt)
    torch.testing.assert_close(_unet_out(reloaded, stage.e_opt), want, rtol=1e-4, atol=1e-5)
    assert not any("lora" in k for k in reloaded.state_dict()), "adapters are fused"


def test_bad_inputs_are_refused_before_anything_is_written(full_run, tmp_path):
    _, ckpt = full_run
    out = tmp_path / "unet"
    cases = {
        "no imagic_finetune artifact": (tmp_path, out, []),
        "is a file": (ckpt, ckpt / "imagic_finetune.safetensors", []),
        "folder with other content": (ckpt, ckpt, []),
        "dtype='float8'": (ckpt, out, ["dtype=float8"]),
        "base model: artifact has 'tiny-latent-seed0'": (ckpt, out, ["base_model.seed=1"]),
        "unknown base_model 'nope': choose one of": (ckpt, out, ["base_model=nope"]),
    }
    for message, (checkpoint_dir, destination, extra) in cases.items():
        with pytest.raises(UserInputError, match=message):
            _export(checkpoint_dir, destination, *extra)
        assert not out.exists(), message
    for argv, message in (
        ([f"out={out}"], "missing required setting checkpoint_dir"),
        ([f"checkpoint_dir={ckpt}", f"out={out}", "steps=3"], "unknown setting steps"),
        ([f"checkpoint_dir={ckpt}", "out"], "is not key=value"),
    ):
        with pytest.raises(UserInputError, match=message):
            parse_arguments(argv)


def test_the_command_line_says_one_line_and_exits_2(full_run, tmp_path):
    _, ckpt = full_run
    out = tmp_path / "unet"
    r = run(
        "-m",
        "editing_app.commands.export_unet",
        f"checkpoint_dir={ckpt}",
        f"out={out}",
        "base_model=nope",
    )
    lines = r.stderr.strip().splitlines()
    assert r.returncode == 2
    assert len(lines) == 1 and lines[0].startswith("error: unknown base_model 'nope'"), lines
    assert not out.exists()
    r = run(
        "-m",
        "editing_app.commands.export_unet",
        f"checkpoint_dir={ckpt}",
        f"out={out}",
        "base_model=tiny",
    )
    assert r.returncode == 0, r.stderr[-2000:]
    assert (out / "config.json").is_file()


def test_a_failed_write_keeps_the_earlier_export(tmp_path, monkeypatch):
    import errno

    from editing.models.unet_export import save_unet_folder

    unet = build_tiny_model().unet
    out = save_unet_folder(unet, tmp_path / "unet")
    before = (out / "diffusion_pytorch_model.safetensors").read_bytes()

    def full_disk(self, folder, **kwargs):
        (Path(folder) / "partial").write_bytes(b"x")
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(type(unet), "save_pretrained", full_disk)
    with pytest.raises(UserInputError, match="No space left on device.*nothing was written"):
        save_unet_folder(unet, out)
    assert (out / "diffusion_pytorch_model.safetensors").read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["unet"], "no staging folder left"
