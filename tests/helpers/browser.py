"""Debian's Chromium, driven by playwright-core from the root's node_modules (no browser download)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def chromium() -> str:
    """The path of Debian's chromium, or a skip saying what is missing (chromium or playwright-core)."""
    found = shutil.which("chromium")
    if found is None:
        pytest.skip("Debian's chromium is not installed (scripts/system-deps.sh test)")
    if not (ROOT / "node_modules" / "playwright-core").exists():
        pytest.skip("playwright-core is not installed (npm install at the root; make install)")
    return found
