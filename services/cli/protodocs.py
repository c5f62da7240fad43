"""The comments of protos/*.proto, keyed by descriptor full name, for the CLI's help texts.

Generated Python descriptors carry no comments, so they are read from the .proto sources with a
line parser that knows our style (STYLE.md): one or more `//` lines right above each service,
RPC, message and field. Without the sources (an installed wheel) help texts are simply shorter.
"""

from __future__ import annotations

import functools
import re
from pathlib import Path

PROTOS = Path(__file__).resolve().parents[2] / "protos"

_PACKAGE = re.compile(r"^package\s+([\w.]+)\s*;")
_BLOCK = re.compile(r"^(message|service|enum|oneof)\s+(\w+)\s*\{")
_RPC = re.compile(r"^rpc\s+(\w+)\s*\(")
_FIELD = re.compile(r"^(?:optional\s+|repeated\s+)?[\w.]+(?:\s*<[^>]*>)?\s+(\w+)\s*=\s*\d+")


@functools.cache
def comments(folder: Path = PROTOS) -> dict[str, str]:
    """Returns `{full name: comment}` for every commented service, RPC, message and field."""
    found: dict[str, str] = {}
    for path in sorted(folder.rglob("*.proto")):
        found.update(parse(path.read_text(encoding="utf-8")))
    return found


def parse(source: str) -> dict[str, str]:
    """Returns the comments of one .proto file's declarations, keyed by their full names."""
    found: dict[str, str] = {}
    package = ""
    scopes: list[tuple[str, str]] = []  # (kind, name) of each open block
    pending: list[str] = []
    for raw in source.splitlines():
        line = raw.strip()
        if line.startswith("//"):
            pending.append(line.removeprefix("//").strip())
            continue
        comment, pending = " ".join(pending), []
        # Fields of a oneof belong to the enclosing message, so oneofs add nothing to names.
        names = [name for kind, name in scopes if kind != "oneof"]
        in_message = bool(scopes) and scopes[-1][0] in ("message", "oneof")
        name = None
        if match := _PACKAGE.match(line):
            package = match.group(1)
        elif match := _BLOCK.match(line):
            name = match.group(2) if match.group(1) != "oneof" else None
            if not line.endswith("}"):
                scopes.append((match.group(1), match.group(2)))
        elif (match := _RPC.match(line)) or (in_message and (match := _FIELD.match(line))):
            name = match.group(1)
        elif line.startswith("}") and scopes:
            scopes.pop()
        if name and comment:
            found[".".join(filter(None, [package, *names, name]))] = comment
    return found
