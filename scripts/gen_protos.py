"""Generates the Python gRPC stubs from protos/ into gen/ (ignored by git).

Run through `make protos`. The output package `customlabels.<service>.v1` mirrors the proto
packages; every generated folder gets an `__init__.py` so setuptools and mypy see real packages.
"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import grpc_tools
from grpc_tools import protoc

ROOT = Path(__file__).resolve().parent.parent
PROTOS = ROOT / "protos"
OUT = ROOT / "gen"


def main() -> int:
    """Regenerates gen/customlabels from scratch; returns protoc's exit status."""
    sources = sorted(str(p.relative_to(PROTOS)) for p in PROTOS.rglob("*.proto"))
    if not sources:
        print("no .proto files under protos/", file=sys.stderr)
        return 1
    shutil.rmtree(OUT / "customlabels", ignore_errors=True)
    OUT.mkdir(exist_ok=True)
    well_known = Path(grpc_tools.__file__).parent / "_proto"
    status = protoc.main(
        [
            "grpc_tools.protoc",
            f"-I{PROTOS}",
            f"-I{well_known}",
            f"--python_out={OUT}",
            f"--pyi_out={OUT}",
            f"--grpc_python_out={OUT}",
            *sources,
        ]
    )
    if status != 0:
        return status
    for folder in [OUT / "customlabels", *(OUT / "customlabels").rglob("*")]:
        if folder.is_dir():
            (folder / "__init__.py").touch()
    (OUT / "customlabels" / "py.typed").touch()
    return 0


if __name__ == "__main__":
    sys.exit(main())
