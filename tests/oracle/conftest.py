"""Shared fixtures for the oracle tests: the ggufscope binary under test and
the models (../shared/models and the Gemma 3 model that setup.sh assembles)."""
from __future__ import annotations

import glob
import os
import sys

import pytest

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
sys.path.insert(0, os.path.join(ROOT, "scripts"))
sys.path.insert(0, os.path.dirname(__file__))

SHARED = os.environ.get("GGUFSCOPE_SHARED", os.path.join(ROOT, "..", "shared"))
GEMMA = os.path.join(ROOT, ".cache", "models", "gemma-3-270m-q4_k_m.gguf")


def shared_models() -> list[str]:
    return sorted(glob.glob(os.path.join(SHARED, "models", "**", "*.gguf"), recursive=True))


def all_models() -> list[str]:
    return shared_models() + ([GEMMA] if os.path.exists(GEMMA) else [])


def model_id(path: str) -> str:
    return os.path.basename(path)


@pytest.fixture(scope="session")
def ggufscope() -> str:
    path = os.environ.get("GGUFSCOPE_BIN", os.path.join(ROOT, "build", "ggufscope"))
    if not os.path.exists(path):
        pytest.fail(f"{path} not built: run scripts/setup.sh")
    return path


def pytest_collection_modifyitems(config, items):
    if not shared_models():
        raise pytest.UsageError(f"no models under {SHARED}/models: the oracle tests need them")
