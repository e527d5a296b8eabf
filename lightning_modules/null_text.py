"""`stage=null_text`: null-text inversion as a Lightning stage (manual optimisation).

One Lightning training step per DDIM timestep, so the progress bar counts timesteps, the logger
records each step's loss and inner iterations used, and a checkpoint taken between steps resumes
exactly (the pivot, the trajectory so far and the null embeddings are part of it). The algorithm
itself is `editing.inversion.null_text` (Lightning-free).

On SDXL the null embedding is the pair (tokens [1, 77, D1 + D2], pooled [1, P]), optimised together;
the artifact stores `null_embeddings` [N, L, D] and `null_embeddings_pooled` [N, P] (one per
timestep each; [1, ...] for `null_mode=global`) and, as every SDXL artifact, the conditioning kind,
pooled width and time ids (`editing.io.artifacts.make_metadata`).
"""

from __future__ import annotations

import torch
from torch import Tensor

from editing.diffusion.conditioning import POOLED_SUFFIX, Conditioning, embedding
from editing.diffusion.ddim import make_schedule
from editing.errors import UserInputError, check_range, require_text
from editing.inversion.ddim_inversion import invert
from editing.inversion.null_text import (
    Null,
    NullTextSettings,
    guided_null_step,
    guided_step_cond,
    initial_null,
    null_parameters,
    optimize_step,
)
from editing.io.artifacts import image_metadata, make_metadata
from editing.io.edit_inputs import Inputs
from editing.models.diffusion_model import DiffusionModel
from lightning_modules.base import StageModule, log_if_due


class NullTextStage(StageModule):
    """Invert one image with its source caption; exports z_T and the null embeddings.

    Args:
        model: the frozen base model.
        inputs: image and source_prompt ("" allowed: the caption may be empty).
        num_inference_steps: T, DDIM steps of the pivot and of later edits (50).
        num_inner_steps: N, Adam steps per timestep (10).
        guidance_scale: w the edits will use (7.5).
        lr, lr_decay: lr (1 - i lr_decay) at step i (1e-2, 0.01).
        early_stop, early_stop_epsilon, early_stop_slope: stop when loss < eps + i slope.
        null_mode: "per_step" (the paper) or "global" (the paper's ablation: one embedding for
            every step, optimised jointly over the whole trajectory; see `training_step`).

    In global mode the stream has (num_inner_steps + 1) sweeps of T training steps. Each sweep
    runs the guided trajectory from z*_T with the current embedding (the same one at every step)
    and sums the steps' losses against the pivot; the first num_inner_steps sweeps each end with
    one Adam step (lr = `lr`, no decay, no early stop) on that joint loss, and the last sweep
    only evaluates: its losses and final latent (`z_bar`) are exactly what sampling with the
    stored embedding gives.
    `gradient_checkpointing` recomputes the UNet's activations in the backward pass of the
    inner steps (less memory, same gradients).
    """

    stage = "null_text"
    supports_fsdp = False
    supports_sdxl = True  # the null pooled embedding is optimised with the null tokens

    def __init__(
        self,
        model: DiffusionModel,
        inputs: Inputs,
        name: str = "null_text",
        num_inference_steps: int = 50,
        num_inner_steps: int = 10,
        guidance_scale: float = 7.5,
        lr: float = 1e-2,
        lr_decay: float = 0.01,
        early_stop: bool = True,
        early_stop_epsilon: float = 1e-5,
        early_stop_slope: float = 2e-5,
        null_mode: str = "per_step",
        batch_size: int = 1,
        gradient_checkpointing: bool = False,
    ) -> None:
        check_range(int(num_inference_steps), "stage.num_inference_steps", 1, 1000)
        check_range(int(num_inner_steps), "stage.num_inner_steps", 0)
        if null_mode not in ("per_step", "global"):
            raise UserInputError(
                f"stage.null_mode={null_mode!r} is not one of 'per_step', 'global'"
            )
        self.num_inference_steps = int(num_inference_steps)
        self.sweeps = int(num_inner_steps) + 1 if null_mode == "global" else 1
        super().__init__(
            model,
            inputs,
            num_steps=self.num_inference_steps * self.sweeps,
            batch_size=1,
            gradient_checkpointing=gradient_checkpointing,
        )
        if inputs.image is None:
            raise UserInputError("stage=null_text needs image=PATH")
        self.automatic_optimization = False
        self.source_prompt = require_text(inputs.source_prompt, "source_prompt", allow_empty=True)
        self.null_mode = null_mode
        self.settings = NullTextSettings(
            num_inner_steps=int(num_inner_steps),
            guidance_scale=float(guidance_scale),
            lr=float(lr),
            lr_decay=float(lr_decay),
            early_stop=bool(early_stop),
            epsilon=float(early_stop_epsilon),
            slope=float(early_stop_slope),
        )
        self.schedule = make_schedule(model.scheduler, self.num_inference_steps)
        n, shape = self.num_inference_steps, model.sample_shape(inputs.image.size)
        cond = model.encode_condition([self.source_prompt], "source_prompt")
        self.register_buffer("cond", cond.tokens)
        self.register_buffer("cond_pooled", cond.pooled)  # SDXL's [1, P]; None elsewhere
        self.register_buffer("image_pixels", inputs.image.pixels.clone(), persistent=False)
        # Resumable state: the pivot, the optimised trajectory so far, the embeddings found.
        self.register_buffer("pivot_latents", torch.zeros(n + 1, 1, *shape))
        self.register_buffer("pivot_ready", torch.tensor(False))
        self.register_buffer("z_bar", torch.zeros(1, *shape))
        self.register_buffer("null_embeddings", torch.zeros(n, *cond.tokens.shape[1:]))
        pooled_table = None if cond.pooled is None else torch.zeros(n, *cond.pooled.shape[1:])
        self.register_buffer("null_embeddings_pooled", pooled_table)
        self.register_buffer("inner_steps", torch.zeros(n, dtype=torch.int64))
        self.register_buffer("losses", torch.zeros(n))
        self.register_buffer("steps_done", torch.tensor(0))
        null = initial_null(model)  # null_T: the condition of "" (tokens; SDXL: and pooled)
        self.null = null.tokens if isinstance(null, Conditioning) else null
        self.register_parameter("null_pooled", getattr(null, "pooled", None))
        if null_mode == "global":  # the joint gradient of the sweep so far (resumable)
            self.register_buffer("sweep_grad", torch.zeros_like(self.null))
            pooled_grad = None if self.null_pooled is None else torch.zeros_like(self.null_pooled)
            self.register_buffer("sweep_grad_pooled", pooled_grad)

    def condition(self) -> Tensor | Conditioning:
        """C, the source caption's condition: tokens [1, L, D] (SDXL: with pooled [1, P])."""
        return embedding(self.cond, self.cond_pooled)

    def null_condition(self) -> Null:
        """The null embedding being optimised: tokens [1, L, D] (SDXL: with pooled [1, P])."""
        return embedding(self.null, self.null_pooled)

    @property
    def trainer_max_steps(self) -> int:
        # Lightning counts optimizer steps (up to N per timestep): the T-step stream bounds the run.
        return -1

    def content_key(self) -> dict[str, str]:
        s = self.settings
        structure = {
            "num_inference_steps": self.num_inference_steps,
            "guidance_scale": s.guidance_scale,
            "null_mode": self.null_mode,
        }
        return {**super().content_key(), **{k: str(v) for k, v in structure.items()}}

    def setup(self, stage: str) -> None:
        super().setup(stage)
        if self.trainer.world_size > 1:
            # One trajectory: ranks would only repeat the same work, and per-rank early stopping
            # could desynchronise their gradient all-reduces.
            raise UserInputError(
                "stage=null_text inverts one trajectory on one device: use trainer=default or trainer=gpu"
            )

    def configure_optimizers(self):
        return torch.optim.Adam(null_parameters(self.null_condition()), lr=self.settings.lr)

    def on_fit_start(self) -> None:
        self.schedule = self.schedule.to(self.device)
        if bool(self.pivot_ready):  # resumed: the pivot and trajectory come from the checkpoint
            return
        with self.trainer.precision_plugin.forward_context(), torch.no_grad():
            z0 = self.model.encode_image(self.image_pixels.to(self.device))
            inversion = invert(self.model, z0, self.condition(), self.schedule)
        self.pivot_latents.copy_(inversion.latents)
        self.z_bar.copy_(inversion.x_T)
        self.pivot_ready.fill_(True)

    def training_step(self, batch: dict[str, Tensor], batch_idx: int) -> None:
        if self.null_mode == "global":
            return self.global_step_(int(batch["step"]))
        i = int(batch["step"])
        target = self.pivot_latents[self.num_steps - 1 - i]  # z*_{t-1} of sampling step i
        result = optimize_step(
            self.model,
            i,
            self.schedule,
            self.z_bar,
            target,
            self.condition(),
            self.null_condition(),
            self.optimizers(),
            self.settings,
            backward=self.manual_backward,
        )
        self.z_bar.copy_(result.z_prev)
        self.record_null(i)
        self.inner_steps[i] = result.inner_steps
        self.losses[i] = result.loss
        self.steps_done.fill_(i + 1)
        log_if_due(self, "loss", result.loss, prog_bar=True)
        log_if_due(self, "inner_steps", float(result.inner_steps), prog_bar=True)

    def global_step_(self, k: int) -> None:
        """Training step k of `null_mode=global`: sampling step i = k mod T of sweep k // T."""
        n = self.num_inference_steps
        sweep, i = divmod(k, n)
        update = sweep < self.sweeps - 1  # the last sweep only evaluates the final embedding
        if i == 0:
            self.z_bar.copy_(self.pivot_latents[-1])  # every sweep starts from z*_T
        target = self.pivot_latents[n - 1 - i]
        w = self.settings.guidance_scale
        with torch.no_grad():
            eps_c = guided_step_cond(self.model, i, self.schedule, self.z_bar, self.condition())
        null = self.null_condition()
        with torch.set_grad_enabled(update):
            z_prev = guided_null_step(self.model, i, self.schedule, self.z_bar, eps_c, null, w)
            loss = torch.nn.functional.mse_loss(z_prev.float(), target.float())
        if update:  # d(mean over the T steps of the loss)/d null, accumulated over the sweep
            pairs = [(self.null, self.sweep_grad)]
            if self.null_pooled is not None:
                pairs.append((self.null_pooled, self.sweep_grad_pooled))
            for param, _ in pairs:
                param.grad = None
            self.manual_backward(loss / n)
            for param, grad in pairs:
                grad.add_(param.grad)
                param.grad = None
            if i == n - 1:  # end of the sweep: one Adam step on the joint loss
                optimizer = self.optimizers()
                for param, grad in pairs:
                    param.grad = grad.clone()
                optimizer.step()
                optimizer.zero_grad(set_to_none=True)
                for _, grad in pairs:
                    grad.zero_()
        self.z_bar.copy_(z_prev.detach())
        self.losses[i] = float(loss.detach())
        self.inner_steps[i] = self.sweeps - 1
        if sweep == self.sweeps - 1:
            self.record_null(i)
        self.steps_done.fill_(k + 1)
        log_if_due(self, "loss", float(loss.detach()), prog_bar=True)

    def record_null(self, i: int) -> None:
        """Keep the null embedding of sampling step i (tokens; SDXL: and pooled)."""
        self.null_embeddings[i] = self.null.detach()[0]
        if self.null_pooled is not None:
            self.null_embeddings_pooled[i] = self.null_pooled.detach()[0]

    def artifact(self, full_state=None) -> tuple[dict[str, Tensor], dict[str, str]]:
        done = int(self.steps_done)
        unit = "timesteps" if self.null_mode == "per_step" else "steps of the global sweeps"
        if done < self.num_steps:
            raise UserInputError(
                f"null-text inversion stopped after {done} of {self.num_steps} {unit}: no artifact "
                f"written (rerun with resume=true to finish it)"
            )
        per_step = self.null_mode == "per_step"
        nulls = self.null_embeddings if per_step else self.null.detach()
        tensors = {
            "z_T": self.pivot_latents[-1].float(),
            "null_embeddings": nulls.float(),
            "timesteps": self.schedule.timesteps.cpu(),
            "inner_steps": self.inner_steps.cpu(),
            "losses": self.losses.cpu(),
        }
        if self.null_pooled is not None:  # SDXL: the null pooled embedding of every step
            pooled = self.null_embeddings_pooled if per_step else self.null_pooled.detach()
            tensors["null_embeddings" + POOLED_SUFFIX] = pooled.float()
        s = self.settings
        metadata = make_metadata(
            self.stage,
            self.model,
            hparams={
                "num_inner_steps": s.num_inner_steps,
                "lr": s.lr,
                "lr_decay": s.lr_decay,
                "early_stop": s.early_stop,
                "early_stop_epsilon": s.epsilon,
                "early_stop_slope": s.slope,
                "null_mode": self.null_mode,
            },
            **image_metadata(self.inputs.image),
            source_prompt=self.source_prompt,
            num_inference_steps=self.num_inference_steps,
            guidance_scale=s.guidance_scale,
            null_mode=self.null_mode,
            steps_done=done if self.null_mode == "per_step" else self.num_inference_steps,
            scheduler=type(self.model.scheduler).__name__,
        )
        return tensors, metadata
