"""The one mapping between our protobuf messages and the AWS JSON shapes (AWS JSON 1.1, boto3 compatible).

Everything is derived from the message descriptors, so a new field needs no code here:

- names: `snake_case` field -> `PascalCase` member (`project_arn` -> `ProjectArn`, `s3_object` ->
  `S3Object`, `f1_score` -> `F1Score`); `AWS_NAME_OVERRIDES` holds any name that is not the
  mechanical one;
- enums: the AWS string is the value name without the `<ENUM>_` prefix; UNSPECIFIED means absent;
- `google.protobuf.Timestamp`: epoch seconds as a JSON number (fractions allowed); an ISO 8601
  string is accepted on input too;
- `bytes`: base64 strings;
- maps: JSON objects; repeated fields: JSON lists, always emitted (an empty list included);
- presence: unset message fields and unset `optional` scalars are omitted, and so are empty
  strings and bytes of plain proto3 fields (AWS sends no member rather than an empty one, e.g. the
  last page's `NextToken`); numbers and booleans are always emitted, since 0 and false are values.

`from_aws` reports every problem (unknown member, wrong JSON type, bad enum string, bad base64,
two members of one oneof) as `InvalidParameter` naming the member path, e.g.
`DatasetSource.GroundTruthManifest.S3Object.Bucket`.
"""

from __future__ import annotations

import base64
import binascii
import functools
import math
import struct
from datetime import UTC, datetime
from typing import Any, TypeVar

from google.protobuf import descriptor_pb2
from google.protobuf.descriptor import Descriptor, FieldDescriptor
from google.protobuf.message import Message
from google.protobuf.timestamp_pb2 import Timestamp

from services.common import enums
from services.common.errors import InvalidParameter

M = TypeVar("M", bound=Message)

# AWS member names that are not the mechanical PascalCase of the field name, keyed by the field's
# full name. Every field of protos/ was checked against spec/api.md: none needs one today.
AWS_NAME_OVERRIDES: dict[str, str] = {}

_TIMESTAMP = Timestamp.DESCRIPTOR.full_name
_NANOS_PER_SECOND = 1_000_000_000

_INT_RANGES = {
    FieldDescriptor.CPPTYPE_INT32: (-(2**31), 2**31 - 1),
    FieldDescriptor.CPPTYPE_UINT32: (0, 2**32 - 1),
    FieldDescriptor.CPPTYPE_INT64: (-(2**63), 2**63 - 1),
    FieldDescriptor.CPPTYPE_UINT64: (0, 2**64 - 1),
}
_FLOATS = (FieldDescriptor.CPPTYPE_FLOAT, FieldDescriptor.CPPTYPE_DOUBLE)


def aws_name(field: FieldDescriptor) -> str:
    """Returns the AWS member name of a field (`s3_key_prefix` -> `S3KeyPrefix`)."""
    override = AWS_NAME_OVERRIDES.get(field.full_name)
    if override is not None:
        return override
    return "".join(part[:1].upper() + part[1:] for part in field.name.split("_"))


def is_map(field: FieldDescriptor) -> bool:
    """Tells whether a field is a protobuf map (a repeated field of generated map entries)."""
    return (
        field.is_repeated
        and field.type == FieldDescriptor.TYPE_MESSAGE
        and field.message_type.GetOptions().map_entry
    )


@functools.cache
def members(descriptor: Descriptor) -> dict[str, FieldDescriptor]:
    """Returns the fields of a message keyed by their AWS member names, in field order."""
    return {aws_name(field): field for field in descriptor.fields}


@functools.cache
def _real_oneof(descriptor: Descriptor) -> dict[str, str]:
    # proto3 `optional` puts the field in a synthetic oneof; only real oneofs forbid two members.
    # The Python descriptor API does not tell them apart, the descriptor proto does.
    proto = descriptor_pb2.DescriptorProto()
    descriptor.CopyToProto(proto)
    return {
        field.name: proto.oneof_decl[field.oneof_index].name
        for field in proto.field
        if field.HasField("oneof_index") and not field.proto3_optional
    }


# --------------------------------------------------------------------------- to AWS


def to_aws(message: Message) -> dict[str, Any]:
    """Returns the AWS JSON object of a message (see the module docstring for the rules)."""
    out: dict[str, Any] = {}
    for field in message.DESCRIPTOR.fields:
        value = getattr(message, field.name)
        if is_map(field):
            value_field = field.message_type.fields_by_name["value"]
            out[aws_name(field)] = {str(k): _value_to_aws(value_field, v) for k, v in value.items()}
        elif field.is_repeated:
            items = (_value_to_aws(field, item) for item in value)
            out[aws_name(field)] = [item for item in items if item is not None]
        elif not field.has_presence or message.HasField(field.name):
            converted = _value_to_aws(field, value)
            # An unset plain proto3 string reads as "": AWS omits such a member (e.g. NextToken).
            if converted is not None and (field.has_presence or converted != ""):
                out[aws_name(field)] = converted
    return out


def _value_to_aws(field: FieldDescriptor, value: Any) -> Any:
    if field.type == FieldDescriptor.TYPE_MESSAGE:
        if field.message_type.full_name == _TIMESTAMP:
            return value.seconds + value.nanos / _NANOS_PER_SECOND
        return to_aws(value)
    if field.type == FieldDescriptor.TYPE_ENUM:
        return enums.to_aws(field.enum_type, value)
    if field.type == FieldDescriptor.TYPE_BYTES:
        return base64.b64encode(value).decode("ascii")
    if field.cpp_type == FieldDescriptor.CPPTYPE_FLOAT:
        return _shortest_float32(value)
    return value


def _shortest_float32(value: float) -> float:
    """Returns the shortest decimal that reads back as the same float32 (0.9, not 0.8999999761581421)."""
    if not math.isfinite(value):
        return value
    for digits in range(6, 10):
        candidate = float(f"{value:.{digits}g}")
        if struct.unpack("<f", struct.pack("<f", candidate))[0] == value:
            return candidate
    return value


# --------------------------------------------------------------------------- from AWS


def from_aws(data: Any, message_class: type[M], *, raw_blobs: bool = False) -> M:
    """Builds a `message_class` from its AWS JSON object; InvalidParameter names the bad member.

    Blob members take base64 strings; with `raw_blobs` they take the text itself, encoded as
    UTF-8 (the AWS CLI's `--cli-binary-format raw-in-base64-out`). A Python `bytes` value is
    taken as already decoded either way. A JSON null means the member is absent.
    """
    message = message_class()
    _merge(data, message, "", raw_blobs)
    return message


def _merge(data: Any, message: Message, path: str, raw_blobs: bool) -> None:
    if not isinstance(data, dict):
        raise InvalidParameter(f"{path or 'request'}: expected a JSON object, got {_json_type(data)}")
    fields = members(message.DESCRIPTOR)
    oneofs = _real_oneof(message.DESCRIPTOR)
    chosen: dict[str, str] = {}
    for key, value in data.items():
        here = f"{path}.{key}" if path else str(key)
        field = fields.get(key)
        if field is None:
            raise InvalidParameter(f"{here}: unknown member; expected one of {', '.join(fields)}")
        if value is None:
            continue
        oneof = oneofs.get(field.name)
        if oneof is not None:
            if oneof in chosen:
                raise InvalidParameter(f"{here}: only one of {chosen[oneof]} and {key} may be given")
            chosen[oneof] = key
        _set_field(message, field, value, here, raw_blobs)


def _set_field(message: Message, field: FieldDescriptor, value: Any, path: str, raw_blobs: bool) -> None:
    target = getattr(message, field.name)
    if is_map(field):
        if not isinstance(value, dict):
            raise InvalidParameter(f"{path}: expected a JSON object, got {_json_type(value)}")
        key_field = field.message_type.fields_by_name["key"]
        value_field = field.message_type.fields_by_name["value"]
        for k, v in value.items():
            here = f"{path}.{k}"
            key = _map_key(key_field, k, here)
            if value_field.type == FieldDescriptor.TYPE_MESSAGE:
                _merge_message(target[key], value_field, v, here, raw_blobs)
            else:
                target[key] = _scalar_from_aws(value_field, v, here, raw_blobs)
    elif field.is_repeated:
        if not isinstance(value, list):
            raise InvalidParameter(f"{path}: expected a JSON list, got {_json_type(value)}")
        for index, item in enumerate(value):
            here = f"{path}[{index}]"
            if field.type == FieldDescriptor.TYPE_MESSAGE:
                _merge_message(target.add(), field, item, here, raw_blobs)
            else:
                target.append(_scalar_from_aws(field, item, here, raw_blobs))
    elif field.type == FieldDescriptor.TYPE_MESSAGE:
        target.SetInParent()  # `{}` still sets the member: presence is what an empty object says
        _merge_message(target, field, value, path, raw_blobs)
    else:
        setattr(message, field.name, _scalar_from_aws(field, value, path, raw_blobs))


def _merge_message(target: Message, field: FieldDescriptor, value: Any, path: str, raw_blobs: bool) -> None:
    if field.message_type.full_name == _TIMESTAMP:
        target.CopyFrom(_timestamp_from_aws(value, path))
    else:
        _merge(value, target, path, raw_blobs)


def _map_key(field: FieldDescriptor, key: str, path: str) -> str | int:
    # JSON object keys are always strings; integer-keyed maps spell their keys in decimal.
    if field.cpp_type == FieldDescriptor.CPPTYPE_STRING:
        return key
    try:
        number = int(key)
    except ValueError:
        raise InvalidParameter(f"{path}: map key {key!r} is not an integer") from None
    return _scalar_from_aws(field, number, path, raw_blobs=False)


def _scalar_from_aws(field: FieldDescriptor, value: Any, path: str, raw_blobs: bool) -> Any:
    kind = field.cpp_type
    if field.type == FieldDescriptor.TYPE_ENUM:
        if not isinstance(value, str):
            raise InvalidParameter(f"{path}: expected a string, got {_json_type(value)}")
        try:
            return enums.from_aws(field.enum_type, value)
        except InvalidParameter as exc:
            raise InvalidParameter(f"{path}: {exc.message}") from None
    if field.type == FieldDescriptor.TYPE_BYTES:
        return _blob_from_aws(value, path, raw_blobs)
    if kind == FieldDescriptor.CPPTYPE_STRING:
        if not isinstance(value, str):
            raise InvalidParameter(f"{path}: expected a string, got {_json_type(value)}")
        return value
    if kind == FieldDescriptor.CPPTYPE_BOOL:
        if not isinstance(value, bool):
            raise InvalidParameter(f"{path}: expected true or false, got {_json_type(value)}")
        return value
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise InvalidParameter(f"{path}: expected a number, got {_json_type(value)}")
    if kind in _FLOATS:
        return float(value)
    if isinstance(value, float) and not value.is_integer():
        raise InvalidParameter(f"{path}: expected an integer, got {value}")
    low, high = _INT_RANGES[kind]
    if not low <= value <= high:
        raise InvalidParameter(f"{path}: {int(value)} is out of range [{low}, {high}]")
    return int(value)


def _blob_from_aws(value: Any, path: str, raw_blobs: bool) -> bytes:
    if isinstance(value, bytes):
        return value
    if not isinstance(value, str):
        raise InvalidParameter(f"{path}: expected a base64 string, got {_json_type(value)}")
    if raw_blobs:
        return value.encode("utf-8")
    try:
        return base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        raise InvalidParameter(f"{path}: not valid base64") from None


def _timestamp_from_aws(value: Any, path: str) -> Timestamp:
    timestamp = Timestamp()
    if isinstance(value, str):
        try:
            moment = datetime.fromisoformat(value)
        except ValueError:
            raise InvalidParameter(
                f"{path}: expected epoch seconds or an ISO 8601 time, got {value!r}"
            ) from None
        timestamp.FromDatetime(moment if moment.tzinfo else moment.replace(tzinfo=UTC))
        return timestamp
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise InvalidParameter(f"{path}: expected epoch seconds, got {_json_type(value)}")
    seconds = math.floor(value)
    nanos = round((value - seconds) * _NANOS_PER_SECOND)
    if nanos == _NANOS_PER_SECOND:
        seconds, nanos = seconds + 1, 0
    try:
        timestamp.seconds, timestamp.nanos = seconds, nanos
        timestamp.ToDatetime()  # range check: years 1-9999
    except (ValueError, OverflowError):
        raise InvalidParameter(f"{path}: {value} is out of the timestamp range") from None
    return timestamp


def _json_type(value: Any) -> str:
    names = {dict: "an object", list: "a list", str: "a string", bool: "a boolean", type(None): "null"}
    for kind, name in names.items():
        if isinstance(value, kind):
            return f"{name} ({value!r})" if kind in (str, bool) else name
    return f"a number ({value!r})" if isinstance(value, int | float) else type(value).__name__
