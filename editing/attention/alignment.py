"""Global sequence alignment of two prompts (Needleman & Wunsch 1970), for Refine and diagnostics.

Prompt-to-Prompt's Refine (Sec. 3.2, "Adding a New Phrase") copies the source map of every token
that is common to both prompts and keeps the edited prompt's own maps for new tokens: it needs the
alignment function A(j) = index of edited token j in the source, or None. The public reference code
uses a global alignment of token ids with score match +1, mismatch -1, gap 0 (so different tokens
are never paired: a substitution is scored as a deletion plus an insertion); this is that alignment,
written from the textbook recurrence.
"""

from __future__ import annotations

from collections.abc import Hashable, Sequence

import torch
from torch import Tensor


def align(
    a: Sequence[Hashable], b: Sequence[Hashable], match: int = 1, mismatch: int = -1, gap: int = 0
) -> list[tuple[int | None, int | None]]:
    """Optimal global alignment of sequences a and b as (i, j) index pairs in order.

    (i, j): a[i] aligned with b[j]; (i, None): a[i] deleted; (None, j): b[j] inserted.
    Recurrence: S[i][j] = max(S[i-1][j-1] + s(a_i, b_j), S[i-1][j] + gap, S[i][j-1] + gap).
    Ties prefer the diagonal, then an insertion, so the result is deterministic.
    """
    n, m = len(a), len(b)
    score = [[0] * (m + 1) for _ in range(n + 1)]
    for i in range(1, n + 1):
        score[i][0] = i * gap
    for j in range(1, m + 1):
        score[0][j] = j * gap
    for i in range(1, n + 1):
        for j in range(1, m + 1):
            diagonal = score[i - 1][j - 1] + (match if a[i - 1] == b[j - 1] else mismatch)
            score[i][j] = max(diagonal, score[i - 1][j] + gap, score[i][j - 1] + gap)

    pairs: list[tuple[int | None, int | None]] = []
    i, j = n, m
    while i > 0 or j > 0:
        same = i > 0 and j > 0 and a[i - 1] == b[j - 1]
        if i > 0 and j > 0 and score[i][j] == score[i - 1][j - 1] + (match if same else mismatch):
            pairs.append((i - 1, j - 1))
            i, j = i - 1, j - 1
        elif j > 0 and score[i][j] == score[i][j - 1] + gap:
            pairs.append((None, j - 1))
            j -= 1
        else:
            pairs.append((i - 1, None))
            i -= 1
    return pairs[::-1]


def refinement_mapper(
    source: Sequence[int], edit: Sequence[int], length: int
) -> tuple[Tensor, Tensor]:
    """The Refine mapping for token-id sequences (start/end tokens included, unpadded).

    Returns:
        mapper: [length] int64: mapper[j] = source position whose map edited position j copies
            (0 where there is none).
        alphas: [length] bool: True where edited position j copies a source map, False where the
            edited prompt keeps its own map (tokens new to the edit).
    Padding positions after the end token copy the source's padding in order, as far as the
    source has padding left (the public reference maps padding position j to source position j,
    which misaligns padding whenever the prompts differ in length).
    """
    mapper = torch.zeros(length, dtype=torch.int64)
    alphas = torch.zeros(length, dtype=torch.bool)
    for i, j in align(list(source), list(edit)):
        if i is not None and j is not None and source[i] == edit[j] and j < length:
            mapper[j], alphas[j] = i, True
    for j in range(len(edit), length):
        i = len(source) + j - len(edit)
        if i < length:
            mapper[j], alphas[j] = i, True
    return mapper, alphas


def differing_words(source: str, edit: str) -> list[tuple[str, str]]:
    """The runs of words that differ between two prompts: [(source words, edited words), ...]."""
    a, b = source.split(), edit.split()
    runs: list[tuple[list[str], list[str]]] = []
    open_run = False
    for i, j in align([w.lower() for w in a], [w.lower() for w in b]):
        if i is not None and j is not None and a[i].lower() == b[j].lower():
            open_run = False
            continue
        if not open_run:
            runs.append(([], []))
            open_run = True
        if i is not None:
            runs[-1][0].append(a[i])
        if j is not None:
            runs[-1][1].append(b[j])
    return [(" ".join(x), " ".join(y)) for x, y in runs]
