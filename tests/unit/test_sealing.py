"""Sealing personal data under a subject's key: round trip, binding, wrong keys, tampering."""

from __future__ import annotations

import base64

from engine.sealing import new_subject_key, open_sealed, seal, unwrap_key, wrap_key

PII = b'{"cpf": "52998224725", "name": "Ana Souza"}'


def test_a_sealed_value_opens_with_its_key_only_and_for_its_record_only() -> None:
    key = new_subject_key()
    sealed = seal(key, PII, "evidence-1")
    assert b"52998224725" not in base64.b64decode(sealed)
    assert open_sealed(key, sealed, "evidence-1") == PII
    assert open_sealed(new_subject_key(), sealed, "evidence-1") is None
    assert open_sealed(key, sealed, "evidence-2") is None
    assert seal(key, PII, "evidence-1") != sealed  # a fresh nonce every time


def test_an_altered_sealed_value_does_not_open() -> None:
    key = new_subject_key()
    raw = bytearray(base64.b64decode(seal(key, PII, "e")))
    raw[-1] ^= 1
    assert open_sealed(key, base64.b64encode(bytes(raw)).decode(), "e") is None


def test_subject_keys_are_wrapped_under_the_master_key_and_bound_to_their_subject() -> None:
    master, key = new_subject_key(), new_subject_key()
    wrapped = wrap_key(master, key, "u1")
    assert key not in base64.b64decode(wrapped)
    assert unwrap_key(master, wrapped, "u1") == key
    assert unwrap_key(master, wrapped, "u2") is None
    assert unwrap_key(new_subject_key(), wrapped, "u1") is None
