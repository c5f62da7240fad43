"""Writing a benchmark's results: the markdown table goes to bench/results/ and to stdout."""

from __future__ import annotations

from pathlib import Path


def write(path: Path, lines: list[str]) -> None:
    """Writes the lines (a markdown document) to `path`, creating bench/results/, and prints them."""
    path.parent.mkdir(parents=True, exist_ok=True)
    text = "\n".join(lines)
    path.write_text(text)
    print(text)
