"""Admin API keys and roles. Keys come from configuration as SHA-256 digests (the key itself
is shown once, when made, and stored nowhere); a request presents the key as a bearer token.

>>> keys = parse_api_keys(f"ana:analyst:{key_digest('s3cret')}")
>>> authenticate("Bearer s3cret", keys)
ApiKey(name='ana', role=<Role.ANALYST: 'analyst'>)
>>> authenticate("Bearer wrong", keys) is None, authenticate(None, keys) is None
(True, True)
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from dataclasses import dataclass
from enum import StrEnum

_NAME = re.compile(r"^[A-Za-z0-9._@-]{1,64}$")
_DIGEST = re.compile(r"^[0-9a-f]{64}$")


class Role(StrEnum):
    """analyst: read, check, add notes; admin: everything, lists and closing cases too."""

    ANALYST = "analyst"
    ADMIN = "admin"

    def allows(self, needed: Role) -> bool:
        return self is Role.ADMIN or needed is Role.ANALYST


@dataclass(frozen=True)
class ApiKey:
    name: str
    role: Role


def key_digest(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def new_key() -> str:
    """A fresh random key (256 bits, URL-safe)."""
    return secrets.token_urlsafe(32)


def parse_api_keys(text: str) -> dict[str, ApiKey]:
    """``name:role:digest,...`` -> keys by digest; ValueError (one line) on a bad entry."""
    keys: dict[str, ApiKey] = {}
    for number, item in enumerate(filter(None, (i.strip() for i in text.split(","))), 1):
        name, _, rest = item.partition(":")
        role, _, digest = rest.partition(":")
        if not _NAME.match(name):
            raise ValueError(f"API key entry {number}: name must be 1-64 of A-Z a-z 0-9 . _ @ -")
        if role not in Role.__members__.values():
            raise ValueError(f"API key entry {number} ({name}): role must be analyst or admin")
        if not _DIGEST.match(digest):
            raise ValueError(f"API key entry {number} ({name}): digest must be 64 hex digits")
        keys[digest] = ApiKey(name, Role(role))
    return keys


def bearer_token(authorization: str | None) -> str | None:
    """The key presented as ``Authorization: Bearer <key>``, if any."""
    scheme, _, token = (authorization or "").partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return None
    return token.strip()


def authenticate(authorization: str | None, keys: dict[str, ApiKey]) -> ApiKey | None:
    """The key presented as ``Authorization: Bearer <key>``, if it is a configured one."""
    token = bearer_token(authorization)
    if token is None:
        return None
    digest = key_digest(token)
    found = None
    for known, key in keys.items():  # compare with every entry: no timing hint
        if hmac.compare_digest(known, digest):
            found = key
    return found
