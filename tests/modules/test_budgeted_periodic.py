"""Checkpoints and previews held to a share of the training time; the fused optimiser step."""

from __future__ import annotations

import pytest
import torch
from lightning.pytorch import Trainer

from demo_world.tiny import build_tiny_model
from editing.io.edit_inputs import Inputs
from editing.io.images import load_image


def _fit(image_path, tmp_path, callbacks, steps=4):
    from editing_app.training import build_datamodule
    from lightning_modules.imagic import ImagicEmbedStage

    model = build_tiny_model()
    inputs = Inputs(image=load_image(image_path, 32), target_prompt="a cat")
    stage = ImagicEmbedStage(model, inputs, num_steps=steps)
    trainer = Trainer(
        accelerator="cpu",
        max_steps=steps,
        max_epochs=1,
        logger=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        default_root_dir=str(tmp_path),
        callbacks=callbacks,
    )
    trainer.fit(stage, datamodule=build_datamodule({}, stage, model, inputs))
    return stage


class CountingCheckpoint:
    """Wraps BudgetedCheckpoint to record the global step of every save."""

    @staticmethod
    def make(tmp_path, time_share):
        from callbacks.budget_checkpoint import BudgetedCheckpoint

        class Counting(BudgetedCheckpoint):
            def __init__(self, **kwargs):
                super().__init__(**kwargs)
                self.steps: list[int] = []

            def _save_checkpoint(self, trainer, filepath):
                super()._save_checkpoint(trainer, filepath)
                self.steps.append(trainer.global_step)

        return Counting(
            time_share=time_share,
            dirpath=tmp_path / "ckpt",
            save_last=True,
            save_top_k=0,
            every_n_train_steps=1,
        )


def test_without_a_share_every_candidate_step_checkpoints(image_path, tmp_path):
    ckpt = CountingCheckpoint.make(tmp_path, None)
    _fit(image_path, tmp_path, [ckpt])
    assert ckpt.steps == [1, 2, 3, 4]


def test_a_checkpoint_too_expensive_for_its_share_is_skipped(image_path, tmp_path, monkeypatch):
    import callbacks.budget_checkpoint as budget_checkpoint

    # One byte a second: the first save is estimated at hours, beyond 5 % of a seconds-long fit,
    # so no candidate step saves and neither does the end of the fit.
    monkeypatch.setattr(budget_checkpoint, "ASSUMED_BYTES_PER_SECOND", 1.0)
    ckpt = CountingCheckpoint.make(tmp_path, 0.05)
    _fit(image_path, tmp_path, [ckpt])
    assert ckpt.steps == [] and not (tmp_path / "ckpt" / "last.ckpt").exists()


def test_a_cheap_checkpoint_saves_within_its_share(image_path, tmp_path):
    from callbacks.budget_checkpoint import checkpoint_bytes

    ckpt = CountingCheckpoint.make(tmp_path, 1.0)  # may take all the time: every candidate
    stage = _fit(image_path, tmp_path, [ckpt])
    assert ckpt.steps == [1, 2, 3, 4] and ckpt.budget.runs == 4
    # The estimate counts e_opt and Adam's two moments of it (plus its step counter).
    e_opt = stage.e_opt.numel() * 4
    assert 3 * e_opt <= checkpoint_bytes(stage.trainer, stage) <= 3 * e_opt + 16


def test_the_end_preview_is_not_rendered_twice_at_the_same_step(image_path, tmp_path):
    from callbacks.preview import EditPreview

    preview = EditPreview(every_n_steps=2, num_inference_steps=1, time_share=None)
    _fit(image_path, tmp_path, [preview])
    assert [p.name for p in preview.saved] == ["step_000002.png", "step_000004.png"]


def test_previews_beyond_their_share_are_skipped(image_path, tmp_path):
    from callbacks.preview import EditPreview

    # A share of 1e-6: the first preview runs (nothing measured), every later one would exceed it.
    preview = EditPreview(every_n_steps=1, num_inference_steps=1, time_share=1e-6)
    _fit(image_path, tmp_path, [preview])
    assert [p.name for p in preview.saved] == ["step_000001.png"]


@pytest.mark.parametrize("name", ["adam", "adamw"])
def test_adam_runs_fused_with_the_per_tensor_update(name):
    from lightning_modules.base import make_optimizer

    torch.manual_seed(0)
    reference = [torch.nn.Parameter(torch.randn(5, 3)), torch.nn.Parameter(torch.randn(7))]
    fused = [torch.nn.Parameter(p.detach().clone()) for p in reference]
    opt = make_optimizer(name, fused, 1e-2, weight_decay=0.01)
    cls = torch.optim.Adam if name == "adam" else torch.optim.AdamW
    ref_opt = cls(reference, lr=1e-2, weight_decay=0.01, foreach=False)
    assert opt.defaults["fused"] is True
    for _ in range(3):
        grads = [torch.randn_like(p) for p in reference]
        for p, q, g in zip(reference, fused, grads):
            p.grad, q.grad = g.clone(), g.clone()
        opt.step()
        ref_opt.step()
    for p, q in zip(reference, fused):
        torch.testing.assert_close(q, p, rtol=1e-6, atol=1e-7)
