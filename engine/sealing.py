"""Personal data kept for investigations, sealed under its data subject's own key (pure).

AES-256-GCM, a fresh 96-bit nonce per seal, the audit record id as associated data (a sealed
value cannot be moved to another record). The sealed text is ``base64(nonce ‖ ciphertext)``
and goes into the audit record, so it is chained and batched like the rest; the key lives in
a separate key store. Erasing a subject (LGPD) destroys the key: the record, its hash and
every proof stay as they were, and the sealed data can no longer be read by anyone.

>>> key = new_subject_key()
>>> sealed = seal(key, b'{"cpf": "52998224725"}', "audit-1")
>>> open_sealed(key, sealed, "audit-1")
b'{"cpf": "52998224725"}'
>>> open_sealed(key, sealed, "audit-2") is None  # bound to its record
True
"""

from __future__ import annotations

import base64
import os

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

KEY_BYTES = 32
NONCE_BYTES = 12


def new_subject_key() -> bytes:
    return AESGCM.generate_key(bit_length=KEY_BYTES * 8)


def seal(key: bytes, plaintext: bytes, bound_to: str) -> str:
    nonce = os.urandom(NONCE_BYTES)
    ciphertext = AESGCM(key).encrypt(nonce, plaintext, bound_to.encode())
    return base64.b64encode(nonce + ciphertext).decode()


def open_sealed(key: bytes, sealed: str, bound_to: str) -> bytes | None:
    """The plaintext, or None if ``key`` is not the one it was sealed with (or the sealed
    text, or what it is bound to, was altered)."""
    raw = base64.b64decode(sealed)
    try:
        return AESGCM(key).decrypt(raw[:NONCE_BYTES], raw[NONCE_BYTES:], bound_to.encode())
    except InvalidTag:
        return None


def wrap_key(master: bytes, subject_key: bytes, subject_id: str) -> bytes:
    """A subject key as kept at rest: sealed under the key store's master key."""
    return seal(master, subject_key, f"subject-key:{subject_id}").encode()


def unwrap_key(master: bytes, wrapped: bytes, subject_id: str) -> bytes | None:
    return open_sealed(master, wrapped.decode(), f"subject-key:{subject_id}")
