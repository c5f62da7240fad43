"""Proto enum values <-> the AWS strings (the value name without its `<ENUM>_` prefix)."""

from __future__ import annotations

from google.protobuf.descriptor import EnumDescriptor

from services.common.errors import InvalidParameter

# Version statuses in which a model exists and may be started or copied (spec/api.md §1.3); the
# training service guards copies with it and the serving service starts.
TRAINED_VERSION_STATUSES = ("TRAINING_COMPLETED", "STOPPED", "COPYING_COMPLETED", "FAILED")


def _prefix(enum: EnumDescriptor) -> str:
    # Our enums prefix every value with the enum name in UPPER_SNAKE (AIP-126).
    return enum.values_by_number[0].name.removesuffix("UNSPECIFIED")


def to_aws(enum: EnumDescriptor, number: int) -> str | None:
    """Returns the AWS string of an enum value; None for UNSPECIFIED (the field is absent)."""
    if number == 0:
        return None
    value = enum.values_by_number.get(number)
    if value is None:
        raise InvalidParameter(f"unknown {enum.name} value {number}")
    return value.name.removeprefix(_prefix(enum))


def from_aws(enum: EnumDescriptor, text: str) -> int:
    """Returns the enum number of an AWS string; InvalidParameter when it is not a value."""
    value = enum.values_by_name.get(_prefix(enum) + text)
    if value is None or value.number == 0:
        allowed = [v.name.removeprefix(_prefix(enum)) for v in enum.values if v.number]
        raise InvalidParameter(f"{text!r} is not a valid {enum.name}; allowed: {', '.join(allowed)}")
    return value.number
