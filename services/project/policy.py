"""Project policy documents: the checks behind MalformedPolicyDocumentException.

A policy is IAM-syntax JSON (Version + Statement). We check the grammar IAM checks — known
top-level keys, Effect Allow/Deny, Principal/Action/Resource shapes — and report the first
problem in words; we do not evaluate conditions here.
"""

from __future__ import annotations

import json
import re
from typing import Any

from services.common.errors import InvalidParameter, MalformedPolicyDocument

_ALLOWED_CHARS = re.compile(r"^[\u0009\u000A\u000D\u0020-\u00FF]+$")
_VERSIONS = {"2012-10-17", "2008-10-17"}
_TOP_KEYS = {"Version", "Id", "Statement"}
_STATEMENT_KEYS = {
    "Sid",
    "Effect",
    "Principal",
    "NotPrincipal",
    "Action",
    "NotAction",
    "Resource",
    "NotResource",
    "Condition",
}
MAX_DOCUMENT_CHARS = 2000


def _strings(value: Any) -> bool:
    return isinstance(value, str) or (
        isinstance(value, list) and bool(value) and all(isinstance(v, str) for v in value)
    )


def _principal_ok(value: Any) -> bool:
    if value == "*":
        return True
    return (
        isinstance(value, dict)
        and bool(value)
        and all(isinstance(k, str) and _strings(v) for k, v in value.items())
    )


def check_document(document: str) -> dict[str, Any]:
    """Returns the parsed policy; InvalidParameter for length/charset, MalformedPolicyDocument for grammar."""
    if not 1 <= len(document) <= MAX_DOCUMENT_CHARS:
        raise InvalidParameter(f"PolicyDocument must be 1 to {MAX_DOCUMENT_CHARS} characters long")
    if not _ALLOWED_CHARS.match(document):
        raise InvalidParameter("PolicyDocument may contain only tab, LF, CR and characters U+0020 to U+00FF")
    try:
        policy = json.loads(document)
    except ValueError as exc:
        raise MalformedPolicyDocument(f"PolicyDocument is not valid JSON: {exc}") from None
    if not isinstance(policy, dict):
        raise MalformedPolicyDocument("PolicyDocument must be a JSON object")
    unknown = set(policy) - _TOP_KEYS
    if unknown:
        raise MalformedPolicyDocument(f"PolicyDocument has unknown keys: {sorted(unknown)}")
    if policy.get("Version") not in _VERSIONS:
        raise MalformedPolicyDocument('PolicyDocument Version must be "2012-10-17" or "2008-10-17"')
    statements = policy.get("Statement")
    if isinstance(statements, dict):
        statements = [statements]
    if not isinstance(statements, list) or not statements:
        raise MalformedPolicyDocument("PolicyDocument needs a Statement (an object or a non-empty list)")
    for i, st in enumerate(statements):
        where = f"Statement[{i}]"
        if not isinstance(st, dict):
            raise MalformedPolicyDocument(f"{where} must be an object")
        unknown = set(st) - _STATEMENT_KEYS
        if unknown:
            raise MalformedPolicyDocument(f"{where} has unknown keys: {sorted(unknown)}")
        if st.get("Effect") not in ("Allow", "Deny"):
            raise MalformedPolicyDocument(f'{where}.Effect must be "Allow" or "Deny"')
        if ("Principal" in st) == ("NotPrincipal" in st):
            raise MalformedPolicyDocument(f"{where} needs exactly one of Principal or NotPrincipal")
        if not _principal_ok(st.get("Principal", st.get("NotPrincipal"))):
            raise MalformedPolicyDocument(f'{where}.Principal must be "*" or a map of principal lists')
        if ("Action" in st) == ("NotAction" in st):
            raise MalformedPolicyDocument(f"{where} needs exactly one of Action or NotAction")
        if not _strings(st.get("Action", st.get("NotAction"))):
            raise MalformedPolicyDocument(f"{where}.Action must be a string or a list of strings")
        if "Resource" in st and "NotResource" in st:
            raise MalformedPolicyDocument(f"{where} may not have both Resource and NotResource")
        resource = st.get("Resource", st.get("NotResource"))
        if resource is not None and not _strings(resource):
            raise MalformedPolicyDocument(f"{where}.Resource must be a string or a list of strings")
        if "Condition" in st and not isinstance(st["Condition"], dict):
            raise MalformedPolicyDocument(f"{where}.Condition must be an object")
    return policy


def allows(policy: dict[str, Any], principal_account: str, action: str) -> bool:
    """Tells whether `policy` grants `action` to the account (an explicit Deny wins).

    Used by CopyProjectVersion to honour project policies; matching is on the account id or ARN
    in an AWS principal and on exact or `*`-wildcard action names.
    """
    statements = policy["Statement"] if isinstance(policy["Statement"], list) else [policy["Statement"]]

    def principal_matches(st: dict[str, Any]) -> bool:
        value = st.get("Principal")
        if value == "*":
            return True
        if not isinstance(value, dict):
            return False
        aws = value.get("AWS", [])
        for p in [aws] if isinstance(aws, str) else aws:
            if p == "*" or p == principal_account or re.fullmatch(rf"arn:aws:iam::{principal_account}:.*", p):
                return True
        return False

    def action_matches(st: dict[str, Any]) -> bool:
        actions = st.get("Action", [])
        for a in [actions] if isinstance(actions, str) else actions:
            if re.fullmatch(re.escape(a).replace(r"\*", ".*"), action, flags=re.IGNORECASE):
                return True
        return False

    matched = [st for st in statements if "Principal" in st and principal_matches(st) and action_matches(st)]
    if any(st["Effect"] == "Deny" for st in matched):
        return False
    return any(st["Effect"] == "Allow" for st in matched)
