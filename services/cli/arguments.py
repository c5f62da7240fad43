"""Command-line flags from request fields, and their values back into the request's AWS JSON.

One flag per field, `--field-name`, shaped by the field (as the AWS CLI does):

- strings, numbers: `--project-name shelves`, `--max-results 5`; a string may be `file://PATH`;
- booleans: `--labeled` / `--no-labeled`;
- enums: the AWS string (`--dataset-type TRAIN`), checked against the choices;
- repeated scalars and enums: several values (`--project-names a b`);
- maps: `KEY=VALUE` pairs or one JSON object (`--tags team=vision env=prod`);
- messages: AWS JSON (PascalCase members) or `file://PATH`; repeated ones take one JSON list or
  several JSON objects;
- bytes: `fileb://PATH`, or the value itself (base64, or raw text with
  `--cli-binary-format raw-in-base64-out`).

The values are gathered into the request's AWS JSON object, which `awsjson.from_aws` then turns
into the request message: one validation path for flags, `--cli-input-json` and the HTTP edge.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from google.protobuf.descriptor import Descriptor, FieldDescriptor
from google.protobuf.timestamp_pb2 import Timestamp

from services.common import awsjson, enums

FILE = "file://"
FILEB = "fileb://"

_TIMESTAMP = Timestamp.DESCRIPTOR.full_name
_INTEGERS = (
    FieldDescriptor.CPPTYPE_INT32,
    FieldDescriptor.CPPTYPE_INT64,
    FieldDescriptor.CPPTYPE_UINT32,
    FieldDescriptor.CPPTYPE_UINT64,
)
_FLOATS = (FieldDescriptor.CPPTYPE_FLOAT, FieldDescriptor.CPPTYPE_DOUBLE)


class ArgumentError(Exception):
    """A flag value that cannot be read (a file that is missing, JSON that does not parse)."""


def read_file(reference: str, binary: bool = False) -> str | bytes:
    """Returns the content of the file a `file://PATH` or `fileb://PATH` value names."""
    path = Path(reference.removeprefix(FILEB if binary else FILE)).expanduser()
    try:
        return path.read_bytes() if binary else path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ArgumentError(f"cannot read {reference}: {exc}") from None


def parse_json(text: str, what: str) -> Any:
    """Parses a JSON argument, or the JSON in the file a `file://PATH` argument names."""
    if text.startswith(FILE):
        text = str(read_file(text))
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise ArgumentError(f"{what}: invalid JSON: {exc}") from None


def _choices(field: FieldDescriptor) -> list[str]:
    return [
        str(enums.to_aws(field.enum_type, value.number)) for value in field.enum_type.values if value.number
    ]


def _parse_bool(text: str) -> bool:
    if text.lower() in ("true", "false"):
        return text.lower() == "true"
    raise argparse.ArgumentTypeError(f"expected true or false, got {text!r}")


def skeleton(descriptor: Descriptor, seen: frozenset[str] = frozenset()) -> dict[str, Any]:
    """Returns an example AWS JSON object of a message, with a placeholder of the right type per member."""
    seen = seen | {descriptor.full_name}
    return {awsjson.aws_name(field): _example(field, seen) for field in descriptor.fields}


def _example(field: FieldDescriptor, seen: frozenset[str]) -> Any:
    if awsjson.is_map(field):
        return {"KEY": _single_example(field.message_type.fields_by_name["value"], seen)}
    example = _single_example(field, seen)
    return [example] if field.is_repeated else example


def _single_example(field: FieldDescriptor, seen: frozenset[str]) -> Any:
    if field.type == FieldDescriptor.TYPE_MESSAGE:
        if field.message_type.full_name == _TIMESTAMP:
            return 0.0
        return {} if field.message_type.full_name in seen else skeleton(field.message_type, seen)
    if field.type == FieldDescriptor.TYPE_ENUM:
        return "|".join(_choices(field))
    if field.type == FieldDescriptor.TYPE_BYTES:
        return "base64"
    if field.cpp_type == FieldDescriptor.CPPTYPE_BOOL:
        return False
    if field.cpp_type in _INTEGERS:
        return 0
    return 0.0 if field.cpp_type in _FLOATS else "string"


@dataclass(frozen=True)
class Flag:
    """The command-line flag of one request field."""

    field: FieldDescriptor

    @property
    def option(self) -> str:
        """Returns the flag, e.g. --project-name."""
        return "--" + self.field.name.replace("_", "-")

    @property
    def dest(self) -> str:
        """Returns the namespace attribute; prefixed so no field can clash with a global flag."""
        return "field_" + self.field.name

    def add_to(self, parser: argparse.ArgumentParser, comment: str) -> None:
        """Adds the flag to a command's parser, with `comment` (the field's proto comment) as help."""
        field = self.field
        kwargs: dict[str, Any] = {"dest": self.dest, "default": None}
        many = {"nargs": "+"} if field.is_repeated else {}
        if awsjson.is_map(field):
            kwargs |= {"nargs": "+", "metavar": "KEY=VALUE", "help": "KEY=VALUE pairs or one JSON object"}
        elif field.type == FieldDescriptor.TYPE_MESSAGE:
            shape = json.dumps(skeleton(field.message_type), separators=(", ", ": "))
            shape = f"[{shape}, ...]" if field.is_repeated else shape
            kwargs |= many | {"metavar": "JSON", "help": f"JSON or file://PATH, shaped {shape}"}
        elif field.type == FieldDescriptor.TYPE_ENUM:
            kwargs |= many | {"choices": _choices(field)}
        elif field.type == FieldDescriptor.TYPE_BYTES:
            kwargs |= many | {"metavar": "fileb://PATH|VALUE", "help": "fileb://PATH or the value"}
        elif field.cpp_type == FieldDescriptor.CPPTYPE_BOOL:
            if field.is_repeated:
                kwargs |= {"nargs": "+", "type": _parse_bool, "metavar": "true|false"}
            else:
                kwargs["action"] = argparse.BooleanOptionalAction
        elif field.cpp_type in _INTEGERS:
            kwargs |= many | {"type": int, "metavar": "INTEGER"}
        elif field.cpp_type in _FLOATS:
            kwargs |= many | {"type": float, "metavar": "NUMBER"}
        else:
            kwargs |= many | {"metavar": "STRING"}
        text = " ".join(filter(None, [comment, kwargs.pop("help", "")]))
        # argparse %-formats help texts, and comments say things like "20%".
        parser.add_argument(self.option, help=text.replace("%", "%%") or None, **kwargs)

    def to_aws(self, value: Any, raw_blobs: bool) -> Any:
        """Returns the AWS JSON value of what argparse read for this flag."""
        field = self.field
        if awsjson.is_map(field):
            return self._map(value)
        if field.type == FieldDescriptor.TYPE_MESSAGE:
            if not field.is_repeated:
                return parse_json(value, self.option)
            items: list[Any] = []
            for text in value:
                parsed = parse_json(text, self.option)
                items.extend(parsed if isinstance(parsed, list) else [parsed])
            return items
        if field.is_repeated:
            return [self._scalar(item, raw_blobs) for item in value]
        return self._scalar(value, raw_blobs)

    def _map(self, values: list[str]) -> Any:
        if len(values) == 1 and values[0].lstrip().startswith(("{", FILE)):
            return parse_json(values[0], self.option)
        pairs: dict[str, str] = {}
        for item in values:
            key, sep, val = item.partition("=")
            if not sep or not key:
                raise ArgumentError(f"{self.option}: expected KEY=VALUE, got {item!r}")
            pairs[key] = val
        return pairs

    def _scalar(self, value: Any, raw_blobs: bool) -> Any:
        if self.field.type == FieldDescriptor.TYPE_BYTES:
            if value.startswith(FILEB):
                return read_file(value, binary=True)
            return value.encode("utf-8") if raw_blobs else value
        if self.field.cpp_type == FieldDescriptor.CPPTYPE_STRING and value.startswith(FILE):
            return read_file(value)
        return value


def flags(descriptor: Descriptor) -> list[Flag]:
    """Returns the flags of a request message, one per field in field order."""
    return [Flag(field) for field in descriptor.fields]


def add_flags(parser: argparse.ArgumentParser, descriptor: Descriptor, docs: Mapping[str, str]) -> None:
    """Adds a flag per request field to a command's parser, documented by the fields' comments."""
    for flag in flags(descriptor):
        flag.add_to(parser, docs.get(flag.field.full_name, ""))


def request_json(
    namespace: argparse.Namespace, descriptor: Descriptor, base: Mapping[str, Any], raw_blobs: bool
) -> dict[str, Any]:
    """Returns the request's AWS JSON: `base` (from --cli-input-json), overlaid with the flags given."""
    document = dict(base)
    given = vars(namespace)
    for flag in flags(descriptor):
        value = given.get(flag.dest)
        if value is not None:
            document[awsjson.aws_name(flag.field)] = flag.to_aws(value, raw_blobs)
    return document
