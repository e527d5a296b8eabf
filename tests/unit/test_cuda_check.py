"""A stage's fit uses torch's own CUDA check, not the NVML device count Lightning switches on,
so that optimiser steps do not query NVML; the user's setting and forking strategies keep it."""

from __future__ import annotations

import os

import pytest
import torch
from helpers import compose_config
from lightning.pytorch import Trainer

from editing_app.cuda_check import NVML_CHECK, use_torch_cuda_check
from editing_app.training import build_trainer


@pytest.fixture
def nvml_queries(monkeypatch) -> list[int]:
    """Counts NVML device queries (torch's NVML-based check), with the variable set as importing
    Lightning sets it and not set when the application started."""
    monkeypatch.setenv(NVML_CHECK, "1")
    monkeypatch.setattr("editing_app.cuda_check.SETTING_AT_START", None)
    calls: list[int] = []
    real = torch.cuda._raw_device_count_nvml

    def counting() -> int:
        calls.append(1)
        return real()

    monkeypatch.setattr(torch.cuda, "_raw_device_count_nvml", counting)
    return calls


def _adam_steps(n: int = 3) -> None:
    p = torch.nn.Parameter(torch.zeros(4))
    opt = torch.optim.Adam([p], lr=1e-3)
    for _ in range(n):
        p.grad = torch.ones_like(p)
        opt.step()


def _cpu_trainer(**kwargs) -> Trainer:
    return Trainer(accelerator="cpu", logger=False, enable_checkpointing=False, **kwargs)


def test_optimiser_steps_stop_querying_nvml(nvml_queries):
    _adam_steps()
    assert len(nvml_queries) >= 3  # at least one query per step under Lightning's setting
    assert use_torch_cuda_check(_cpu_trainer())
    nvml_queries.clear()
    _adam_steps()
    assert nvml_queries == [] and NVML_CHECK not in os.environ


def test_a_setting_made_before_the_start_is_kept(nvml_queries, monkeypatch):
    monkeypatch.setattr("editing_app.cuda_check.SETTING_AT_START", "1")
    assert not use_torch_cuda_check(_cpu_trainer())
    assert os.environ[NVML_CHECK] == "1"


def test_a_forking_strategy_keeps_the_nvml_check(nvml_queries):
    assert not use_torch_cuda_check(_cpu_trainer(devices=2, strategy="ddp_fork"))
    assert os.environ[NVML_CHECK] == "1"


def test_stage_trainers_restore_torchs_check(nvml_queries, tmp_path):
    cfg = compose_config("train", ["trainer=cpu", "logger=none", "callbacks=none"])
    build_trainer(cfg, "imagic_embed", 7, tmp_path)
    assert NVML_CHECK not in os.environ
