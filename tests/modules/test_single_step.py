"""Imagic's stages take their one optimiser step per batch themselves (manual optimisation), the
same step as Lightning's automatic optimisation, which they keep where the Trainer clips or
accumulates gradients; an interrupted embedding run resumes to exactly the uninterrupted result."""

from __future__ import annotations

import pytest
import torch
from lightning.pytorch import Trainer
from lightning.pytorch.callbacks import Callback, ModelCheckpoint

from datamodules.single_image import SingleImageDataModule
from demo_world.tiny import build_tiny_model
from editing.io.edit_inputs import Inputs
from editing.io.images import load_image
from lightning_modules.imagic import ImagicEmbedStage


def _stage(image_path, steps: int) -> ImagicEmbedStage:
    inputs = Inputs(image=load_image(image_path, 32), target_prompt="a red circle", seed=0)
    return ImagicEmbedStage(build_tiny_model(), inputs, num_steps=steps, lr=1e-2)


def _datamodule(stage: ImagicEmbedStage, block_steps: int = 32) -> SingleImageDataModule:
    model = stage.model
    return SingleImageDataModule(
        image=stage.inputs.image,
        resolution=model.resolution,
        noise_shape=model.latent_shape,
        num_train_timesteps=model.num_train_timesteps,
        seed=0,
        num_steps=stage.num_steps,
        noise_block_steps=block_steps,
    )


def _fit(stage, max_steps: int, datamodule=None, callbacks=(), ckpt_path=None, **trainer_kw):
    trainer_kw.setdefault("enable_checkpointing", bool(callbacks))
    trainer = Trainer(
        accelerator="cpu",
        max_steps=max_steps,
        max_epochs=1,
        logger=False,
        callbacks=list(callbacks),
        enable_progress_bar=False,
        enable_model_summary=False,
        **trainer_kw,
    )
    trainer.fit(
        stage, datamodule=datamodule or _datamodule(stage), ckpt_path=ckpt_path, weights_only=False
    )
    return trainer


def test_the_stage_step_equals_lightnings_automatic_step(image_path):
    manual, automatic = _stage(image_path, 4), _stage(image_path, 4)
    trainer = _fit(manual, 4)
    assert not manual.automatic_optimization and trainer.global_step == 4
    # a clipping bound no gradient reaches (the gradients are scaled by exactly 1) puts the
    # stage under automatic optimisation without changing its step
    trainer = _fit(automatic, 4, gradient_clip_val=1e9)
    assert automatic.automatic_optimization and trainer.global_step == 4
    assert torch.equal(manual.e_opt.detach(), automatic.e_opt.detach())
    assert not torch.equal(manual.e_opt.detach(), manual.e_tgt)


class _GradNorms(Callback):
    """The norm of e_opt's gradient as the optimiser stepped (still there at the batch's end)."""

    def __init__(self) -> None:
        self.norms: list[float] = []

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        self.norms.append(float(pl_module.e_opt.grad.norm()))


def test_gradient_clipping_still_applies(image_path):
    plain, clipped = _GradNorms(), _GradNorms()
    _fit(_stage(image_path, 3), 3, callbacks=[plain], enable_checkpointing=False)
    stage = _stage(image_path, 3)
    _fit(stage, 3, callbacks=[clipped], enable_checkpointing=False, gradient_clip_val=1e-4)
    assert stage.automatic_optimization
    assert min(plain.norms) > 1e-3 and max(clipped.norms) <= 1e-4 * (1 + 1e-5)


def test_gradient_accumulation_still_applies(image_path):
    stage = _stage(image_path, 4)
    trainer = _fit(stage, 4, accumulate_grad_batches=2)
    assert stage.automatic_optimization
    assert trainer.global_step == 2  # 4 batches, one optimiser step per 2


@pytest.mark.parametrize("stop", [3, 4])  # at a noise block's boundary, and inside a block
def test_an_interrupted_embedding_run_resumes_to_the_uninterrupted_result(
    image_path, tmp_path, stop
):
    straight = _stage(image_path, 7)
    _fit(straight, 7, _datamodule(straight, block_steps=3))

    first = _stage(image_path, 7)
    every_step = ModelCheckpoint(tmp_path, "{step}", every_n_train_steps=1, save_top_k=-1)
    _fit(first, stop, _datamodule(first, block_steps=3), callbacks=[every_step])
    assert not torch.equal(first.e_opt.detach(), straight.e_opt.detach())

    resumed = _stage(image_path, 7)
    every_step = ModelCheckpoint(tmp_path, "{step}", every_n_train_steps=1, save_top_k=-1)
    trainer = _fit(
        resumed,
        7,
        _datamodule(resumed, block_steps=3),
        callbacks=[every_step],
        ckpt_path=str(tmp_path / f"step={stop}.ckpt"),
    )
    assert trainer.global_step == 7
    assert torch.equal(resumed.e_opt.detach(), straight.e_opt.detach())
    opt_a, opt_b = (s.trainer.optimizers[0] for s in (straight, resumed))
    for key in ("exp_avg", "exp_avg_sq"):
        assert torch.equal(opt_a.state[straight.e_opt][key], opt_b.state[resumed.e_opt][key])
