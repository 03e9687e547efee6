"""Shared fixtures: one in-process Ray per test session, offline hub, paths to shared fixtures and demo media."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("RAY_DEDUP_LOGS", "0")

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"


@pytest.fixture(scope="session")
def repo_root() -> Path:
    return REPO


@pytest.fixture(scope="session")
def shared_fixtures() -> Path:
    path = SHARED / "fixtures" / "vidrd_reference"
    if not path.is_dir():
        pytest.fail(f"shared fixtures not found at {path} (the repo must sit beside shared/)")
    return path


@pytest.fixture(scope="session")
def ray_session():
    """One embedded Ray for the whole session (ray.init costs ~5 s and ~2 GB): never shut down mid-session."""
    import ray

    from vidrd_data.runtime import init_ray

    if not ray.is_initialized():
        init_ray(None, num_cpus=2, object_store_mb=400)
    yield ray


@pytest.fixture(scope="session")
def demo_data(tmp_path_factory) -> Path:
    """The demo media (real photos/videos from installed packages), prepared once per session."""
    dest = REPO / "data" / "demo"
    if not (dest / "photos").is_dir():
        subprocess.run([sys.executable, "-m", "vidrd_testing.demo_data", str(dest)], check=True, cwd=REPO)
    return dest


@pytest.fixture
def one_torch_thread():
    """Tiny models gain nothing from intra-op threads, and on a busy 2-core runner OpenMP threads spinning
    against other processes make them ~10x slower. One thread for the test, restored afterwards."""
    import torch

    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


def have_ffmpeg() -> bool:
    return shutil.which("ffmpeg") is not None
