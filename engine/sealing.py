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

Free text about a subject (a case note) is sealed the same way, with a keyed digest:

>>> note = seal_note(key, "ligou Maria Silva, 11 98765-4321", "u1")
>>> open_note(key, note.sealed, "u1")
'ligou Maria Silva, 11 98765-4321'
>>> note.digest == note_digest(key, "ligou Maria Silva, 11 98765-4321")
True
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
from typing import NamedTuple

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


class SealedNote(NamedTuple):
    sealed: str
    digest: str
    """HMAC-SHA256 of the text under the subject's key: says which text it was to whoever
    holds the key, and nothing to anyone once the key is destroyed."""


def _note_binding(subject_id: str) -> str:
    return f"note:{subject_id}"


def note_digest(key: bytes, text: str) -> str:
    return hmac.new(key, text.encode(), hashlib.sha256).hexdigest()


def seal_note(key: bytes, text: str, subject_id: str) -> SealedNote:
    """Free text about ``subject_id`` sealed under its key (bound to the subject)."""
    sealed = seal(key, text.encode(), _note_binding(subject_id))
    return SealedNote(sealed, note_digest(key, text))


def open_note(key: bytes, sealed: str, subject_id: str) -> str | None:
    """The note's text, or None if ``key`` does not open it."""
    opened = open_sealed(key, sealed, _note_binding(subject_id))
    return opened.decode() if opened is not None else None
