"""The data subjects' keys, in a RocksDB store of their own (rocksdict), apart from the audit
log: deleting a key (LGPD erasure) makes what was sealed under it unreadable, while the audit
records that hold the sealed text stay untouched.

Keys are kept wrapped under a master key from configuration. A deleted key is flushed and
compacted away at once, so it does not linger in the store's files.
"""

from __future__ import annotations

from pathlib import Path

from rocksdict import BottommostLevelCompaction, CompactOptions, Rdict

from engine.sealing import new_subject_key, unwrap_key, wrap_key


class KeyStoreError(Exception):
    """The key store cannot be used as configured; one line for the operator."""


class SubjectKeyStore:
    def __init__(self, path: Path, master_key: bytes) -> None:
        if len(master_key) != 32:
            raise KeyStoreError("the vault master key must be 32 bytes (64 hex digits)")
        try:
            path.mkdir(parents=True, exist_ok=True)
            self._db = Rdict(str(path))
        except Exception as exc:  # rocksdict raises plain exceptions (e.g. the lock is held)
            raise KeyStoreError(f"cannot open the key store at {path}: {exc}") from None
        self._master = master_key

    def key_for(self, subject_id: str) -> bytes:
        """The subject's key, made on first use."""
        found = self.existing(subject_id)
        if found is not None:
            return found
        key = new_subject_key()
        self._db[subject_id.encode()] = wrap_key(self._master, key, subject_id)
        self._db.flush()
        return key

    def existing(self, subject_id: str) -> bytes | None:
        wrapped = self._db.get(subject_id.encode())
        if wrapped is None:
            return None
        key = unwrap_key(self._master, wrapped, subject_id)
        if key is None:
            raise KeyStoreError("a subject key does not open with the configured master key")
        return key

    def destroy(self, subject_id: str) -> bool:
        """Delete the subject's key for good; False if there was none."""
        name = subject_id.encode()
        if self._db.get(name) is None:
            return False
        del self._db[name]
        self._db.flush()
        # Rewrite every level, the bottommost too: the deleted key leaves no file behind.
        options = CompactOptions()
        options.set_bottommost_level_compaction(BottommostLevelCompaction.force())
        options.set_exclusive_manual_compaction(True)
        self._db.compact_range(None, None, options)
        return True

    def close(self) -> None:
        self._db.close()
