"""Shared test fixtures: the body model (built once per session) and the real footage."""
from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def real_fixtures_dir() -> Path:
    return Path(os.environ.get("CHAMP3D_FIXTURES", REPO.parent / "shared" / "fixtures"))


@pytest.fixture(scope="session")
def real_fixtures() -> Path:
    folder = real_fixtures_dir()
    if not folder.is_dir():
        pytest.skip(f"real footage folder {folder} not found (set CHAMP3D_FIXTURES)")
    return folder


@pytest.fixture(scope="session")
def body():
    from champ3d.body.anny_body import AnnyBody

    return AnnyBody()
