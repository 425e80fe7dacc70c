"""Shared fixtures: where the real corpora are (../shared/data unless MESIMP_DATA says otherwise), and IEEE
arithmetic for every test (a training run in the test process turns on flushing subnormals to zero)."""

import os
from pathlib import Path

import pytest

from mesimp.engine.denormals import flush_denormals

SHARED_DATA = Path(os.environ.get("MESIMP_DATA") or Path(__file__).resolve().parents[2] / "shared" / "data")


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """The real data directory; tests that need it skip without it, or fail under MESIMP_REQUIRE_DATA (CI)."""
    if not (SHARED_DATA / "mnist").is_dir():
        message = f"no data directory with mnist/ at {SHARED_DATA}"
        if os.environ.get("MESIMP_REQUIRE_DATA"):
            pytest.fail(message)
        pytest.skip(message)
    return SHARED_DATA


@pytest.fixture(autouse=True)
def ieee_arithmetic():
    yield
    flush_denormals(False)
