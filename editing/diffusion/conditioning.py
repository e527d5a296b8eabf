"""`Conditioning`: what a text-conditioned UNet call is conditioned on, as one value.

Stable Diffusion 1.x/2.x (and the pixel models) condition on the token embeddings of one text
encoder, c = [B, L, D], passed to cross-attention. SDXL (Podell et al. 2023, Sec. 2.1-2.2) adds
two vectors through the UNet's "text_time" embedding: the pooled embedding of its second text
encoder [B, P] and the size/crop micro-conditioning, time ids [B, 6] =
(original_h, original_w, crop_top, crop_left, target_h, target_w). A `Conditioning` holds the
three, so that classifier-free guidance batches them together ([uncond; cond] along every field)
and the model turns them into UNet keyword arguments in one place
(`DiffusionModel.unet_conditioning`).

A plain tensor [B, L, D] is accepted wherever a condition is (`as_conditioning` wraps it): the
SD code paths pass token tensors only, and the UNet gets exactly those tensors.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import Tensor


@dataclass(frozen=True, eq=False)
class Conditioning:
    """Text conditioning of a batch of B samples.

    Attributes:
        tokens: [B, L, D] token embeddings (SDXL: both encoders' penultimate hidden states
            concatenated along D).
        pooled: [B, P] pooled text embedding (SDXL: the second encoder's projected end-of-text
            embedding), None for models without one.
        time_ids: [B, 6] SDXL's size/crop conditioning, None to derive it from the working size
            at the UNet call (`editing.models.sdxl.size_time_ids`).
    """

    tokens: Tensor
    pooled: Tensor | None = None
    time_ids: Tensor | None = None

    @property
    def batch(self) -> int:
        return int(self.tokens.shape[0])

    def fields(self) -> tuple[Tensor | None, Tensor | None, Tensor | None]:
        return (self.tokens, self.pooled, self.time_ids)

    def _map(self, fn) -> Conditioning:
        return Conditioning(*(None if f is None else fn(f) for f in self.fields()))

    def to(self, *args, **kwargs) -> Conditioning:
        """Every field moved/cast as `Tensor.to(*args, **kwargs)`."""
        return self._map(lambda f: f.to(*args, **kwargs))

    def expand(self, batch: int) -> Conditioning:
        """A batch-1 condition repeated (as a view) to `batch` rows; unchanged when it has them."""
        if self.batch == batch:
            return self
        return self._map(lambda f: f.expand(batch, *f.shape[1:]))

    def __getitem__(self, rows) -> Conditioning:
        """The rows `rows` (an index, slice or boolean mask over the batch) of every field."""
        return self._map(lambda f: f[rows])

    def detach(self) -> Conditioning:
        return self._map(lambda f: f.detach())

    def clone(self) -> Conditioning:
        return self._map(lambda f: f.clone())

    @staticmethod
    def cat(conditions: Sequence[Conditioning]) -> Conditioning:
        """The conditions stacked along the batch; every one must carry the same fields."""
        present = {tuple(f is not None for f in c.fields()) for c in conditions}
        if len(present) != 1:
            raise ValueError("cannot batch conditions with different fields (pooled / time ids)")
        columns = zip(*(c.fields() for c in conditions))
        return Conditioning(*(None if col[0] is None else torch.cat(col) for col in columns))


POOLED_SUFFIX = "_pooled"
"""The artifact tensor of an embedding's pooled part is named `<tokens tensor name>_pooled`."""


def embedding(tokens: Tensor, pooled: Tensor | None = None) -> Tensor | Conditioning:
    """The condition of `tokens` [B, L, D] and, on SDXL, `pooled` [B, P]: the plain tensor when
    there is no pooled part (SD-type models), else a `Conditioning`."""
    return tokens if pooled is None else Conditioning(tokens, pooled)


def text_embedding(
    model, prompts: str | Sequence[str], what: str = "prompt"
) -> Tensor | Conditioning:
    """A `DiffusionModel`'s condition of `prompts` (`encode_condition`) as `embedding` gives it:
    the token tensor [B, L, D] on SD-type models, (tokens, pooled [B, P]) on SDXL."""
    cond = model.encode_condition([prompts] if isinstance(prompts, str) else list(prompts), what)
    return embedding(cond.tokens, cond.pooled)


def as_conditioning(cond: Tensor | Conditioning) -> Conditioning:
    """`cond` as a `Conditioning` (a tensor [B, L, D] becomes its token embeddings)."""
    return cond if isinstance(cond, Conditioning) else Conditioning(cond)


def cat_conditions(conditions: Sequence[Tensor | Conditioning]) -> Tensor | Conditioning:
    """Stack along the batch: tensors stay a tensor (`torch.cat`), else a `Conditioning`."""
    if all(isinstance(c, Tensor) for c in conditions):
        return torch.cat(list(conditions))
    return Conditioning.cat([as_conditioning(c) for c in conditions])


def expand_condition(cond: Tensor | Conditioning, batch: int) -> Tensor | Conditioning:
    """A batch-1 condition repeated to `batch` rows, keeping its type (tensor or Conditioning)."""
    if isinstance(cond, Tensor):
        return cond.expand(batch, -1, -1) if cond.shape[0] == 1 else cond
    return cond.expand(batch) if cond.batch == 1 else cond
