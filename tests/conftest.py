"""Shared fixtures: tiny random checkpoints per family and the real embedded demo model."""
from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_NO_ADVISORY_WARNINGS", "1")

from checkpoints import FAMILY_CONFIGS, write_tiny_checkpoint, write_tiny_lora  # noqa: E402


@pytest.fixture(scope="session")
def tiny_checkpoint(tmp_path_factory):
    """``tiny_checkpoint("llama")`` → path of a tiny random checkpoint, written once per session."""
    root = tmp_path_factory.mktemp("tiny-checkpoints")
    made: dict[str, Path] = {}

    def make(family: str) -> Path:
        if family not in made:
            made[family] = write_tiny_checkpoint(family, root / family)
        return made[family]

    return make


@pytest.fixture(scope="session")
def tiny_lora(tiny_checkpoint, tmp_path_factory):
    """A LoRA adapter on the tiny llama, recording the base by absolute path."""
    return write_tiny_lora(tiny_checkpoint("llama"), tmp_path_factory.mktemp("lora") / "adapter")


@pytest.fixture(scope="session")
def session_home(tmp_path_factory) -> Path:
    """One workbench home for the session, so the demo GGUF is converted once."""
    return tmp_path_factory.mktemp("wb-home")


@pytest.fixture(scope="session")
def demo_model_dir(session_home) -> Path:
    from workbench.models.embedded import ensure_demo_model
    from workbench.settings import Settings

    return ensure_demo_model(Settings(home=session_home))


@pytest.fixture(scope="session")
def demo_lm(demo_model_dir):
    from workbench.models.loading import load_model

    return load_model(demo_model_dir, name="SmolLM2-135M-Instruct")


CHROMIUM = "/usr/bin/chromium"


@pytest.fixture(scope="module")
def browser():
    """Debian's headless Chromium driven by Playwright (never a downloaded browser build)."""
    from playwright.sync_api import sync_playwright

    if not Path(CHROMIUM).exists() and shutil.which("chromium") is None:
        pytest.skip("Chromium is not installed (apt-get install -y chromium)")
    with sync_playwright() as p:
        b = p.chromium.launch(
            executable_path=CHROMIUM if Path(CHROMIUM).exists() else shutil.which("chromium"),
            args=["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"],
        )
        yield b
        b.close()


ALL_FAMILIES = sorted(FAMILY_CONFIGS)
