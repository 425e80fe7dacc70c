"""Shared fixtures: where the real corpora are (../shared/data unless MESIMP_DATA says otherwise)."""

import os
from pathlib import Path

import pytest

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
