"""The access keys that may use the HTTP front doors (the AWS JSON edge and the web console).

CUSTOMLABELS_EDGE_CREDENTIALS holds `KEY_ID:SECRET` pairs separated by commas, and/or
CUSTOMLABELS_EDGE_CREDENTIALS_FILE names a file of one `KEY_ID:SECRET` per line (`#` comments). The
edge checks SigV4 signatures against them; the console signs a user in with one of them.
"""

from __future__ import annotations

import hmac
import re
from collections.abc import Mapping
from pathlib import Path

from services.common.config import ConfigError

_ACCESS_KEY_ID = re.compile(r"^[A-Za-z0-9]{16,128}$")


def parse_credentials(text: str, source: str) -> dict[str, str]:
    """Reads `KEY_ID:SECRET` pairs separated by commas or new lines; ConfigError names the bad one."""
    keys: dict[str, str] = {}
    for number, item in enumerate(re.split(r"[,\n]", text), start=1):
        item = item.split("#", 1)[0].strip()
        if not item:
            continue
        key_id, sep, secret = item.partition(":")
        key_id, secret = key_id.strip(), secret.strip()
        # The message names the entry by position: it must never echo a secret.
        if not sep or not _ACCESS_KEY_ID.match(key_id) or not secret:
            raise ConfigError(
                f"{source}: entry {number} is not KEY_ID:SECRET (key id: 16-128 letters/digits)"
            )
        keys[key_id] = secret
    return keys


def access_keys(env: Mapping[str, str]) -> dict[str, str]:
    """Reads both variables; ConfigError when a pair is malformed, the file unreadable or no key is set."""
    credentials = parse_credentials(
        env.get("CUSTOMLABELS_EDGE_CREDENTIALS", ""), "CUSTOMLABELS_EDGE_CREDENTIALS"
    )
    path = env.get("CUSTOMLABELS_EDGE_CREDENTIALS_FILE", "").strip()
    if path:
        try:
            text = Path(path).read_text(encoding="utf-8")
        except OSError as exc:
            raise ConfigError(
                f"CUSTOMLABELS_EDGE_CREDENTIALS_FILE: cannot read {path}: {exc.strerror}"
            ) from None
        credentials.update(parse_credentials(text, path))
    if not credentials:
        raise ConfigError(
            "access keys are required: set CUSTOMLABELS_EDGE_CREDENTIALS=KEY_ID:SECRET "
            "or CUSTOMLABELS_EDGE_CREDENTIALS_FILE"
        )
    return credentials


def secret_matches(credentials: Mapping[str, str], key_id: str, secret: str) -> bool:
    """Tells whether `secret` is the secret of `key_id`; the comparison takes the same time wherever
    the strings differ, and an unknown key id costs one comparison too."""
    expected = credentials.get(key_id, "")
    return hmac.compare_digest(secret.encode(), expected.encode()) and key_id in credentials
