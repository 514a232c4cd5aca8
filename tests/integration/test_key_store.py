"""The subject key store on real RocksDB: keys survive a reopen, erasure destroys them."""

from __future__ import annotations

from pathlib import Path

import pytest
from rocksdict import Rdict

from engine.sealing import open_sealed, seal
from sinks.key_store import KeyStoreError, SubjectKeyStore

MASTER = bytes(range(32))


def test_keys_persist_and_erasure_shreds_what_they_sealed(tmp_path: Path) -> None:
    store = SubjectKeyStore(tmp_path / "keys", MASTER)
    key = store.key_for("ana")
    assert store.key_for("ana") == key and store.existing("bob") is None
    sealed = seal(key, b"cpf 52998224725", "evidence-1")
    store.close()
    raw = Rdict(str(tmp_path / "keys"))
    wrapped = raw[b"ana"]  # what is on disk: the key wrapped under the master key
    raw.close()

    reopened = SubjectKeyStore(tmp_path / "keys", MASTER)
    kept = reopened.existing("ana")
    assert kept is not None and open_sealed(kept, sealed, "evidence-1") == b"cpf 52998224725"
    assert reopened.destroy("ana") and not reopened.destroy("ana")
    assert reopened.existing("ana") is None
    reopened.close()
    files = b"".join(p.read_bytes() for p in (tmp_path / "keys").rglob("*") if p.is_file())
    assert wrapped not in files and key not in files  # not lingering in the files either


def test_a_wrong_master_key_or_a_held_lock_is_a_clear_error(tmp_path: Path) -> None:
    store = SubjectKeyStore(tmp_path / "keys", MASTER)
    store.key_for("ana")
    with pytest.raises(KeyStoreError, match="cannot open the key store"):
        SubjectKeyStore(tmp_path / "keys", MASTER)  # one process at a time
    store.close()
    other = SubjectKeyStore(tmp_path / "keys", bytes(32))
    with pytest.raises(KeyStoreError, match="master key"):
        other.existing("ana")
    other.close()
    with pytest.raises(KeyStoreError, match="32 bytes"):
        SubjectKeyStore(tmp_path / "other", b"short")
