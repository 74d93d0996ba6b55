"""Shared fixtures. Tests that need ../shared/data skip cleanly when it is absent."""
from __future__ import annotations

import os
from pathlib import Path

# Tiny test networks run fastest on one thread, and several torch processes (workers,
# subprocess tests) on 2 cores thrash OpenMP when each spins up a thread per core.
os.environ.setdefault("OMP_NUM_THREADS", "1")

import pytest

ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = ROOT.parent / "shared" / "data"


@pytest.fixture
def shared_data() -> Path:
    if not (SHARED_DATA / "cifar10-lossless-5k.npz").exists():
        pytest.skip(f"{SHARED_DATA} is absent")
    return SHARED_DATA
