"""Fixtures of the cascade tests: one tiny random IF cascade per session (never mutated)."""

from __future__ import annotations

import pytest


@pytest.fixture(scope="session")
def tiny_if():
    from demo_world.tiny_if import build_tiny_if

    return build_tiny_if()
