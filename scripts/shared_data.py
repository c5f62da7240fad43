"""Where the team's real labeled photos live: ../shared/datasets beside the checkout (CI lays it
there), else the workplace's copy. Tests and benchmarks read them; `make demo` never needs them."""

from __future__ import annotations

from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CANDIDATES = (ROOT.parent / "shared" / "datasets", Path("/work/shared/datasets"))


def datasets_dir() -> Path:
    """The first candidate folder that exists; the first one when none does (reads then fail on it,
    naming the path)."""
    return next((c for c in CANDIDATES if c.is_dir()), CANDIDATES[0])
