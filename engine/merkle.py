"""Merkle trees as in RFC 6962 (Certificate Transparency), pure and standard-library only.

Leaves and nodes are hashed with different one-byte prefixes (0x00 leaf, 0x01 node), so a
node can never pass for a leaf. A tree of n leaves splits at the largest power of two below
n, which makes the inclusion proof of any leaf at most log2(n) hashes, and lets anyone check
it with a few lines of ``hashlib`` (``verify_inclusion``; docs/audit-and-lgpd.md prints the
same steps).

>>> leaves = [b"a", b"b", b"c"]
>>> root = merkle_root([leaf_hash(x) for x in leaves])
>>> proof = inclusion_proof([leaf_hash(x) for x in leaves], 2)
>>> verify_inclusion(leaf_hash(b"c"), 2, 3, proof, root)
True
>>> verify_inclusion(leaf_hash(b"x"), 2, 3, proof, root)
False
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

EMPTY_ROOT = hashlib.sha256(b"").digest()
"""The root of a tree with no leaves (RFC 6962: the hash of the empty string)."""


def leaf_hash(data: bytes) -> bytes:
    return hashlib.sha256(b"\x00" + data).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    return hashlib.sha256(b"\x01" + left + right).digest()


def _split(n: int) -> int:
    """The largest power of two smaller than ``n`` (n > 1)."""
    k = 1
    while k * 2 < n:
        k *= 2
    return k


def merkle_root(leaves: Sequence[bytes]) -> bytes:
    """MTH(D[n]) over already-hashed leaves."""
    if not leaves:
        return EMPTY_ROOT
    level = list(leaves)
    return _root(level, 0, len(level))


def _root(leaves: list[bytes], start: int, end: int) -> bytes:
    n = end - start
    if n == 1:
        return leaves[start]
    k = _split(n)
    return node_hash(_root(leaves, start, start + k), _root(leaves, start + k, end))


def inclusion_proof(leaves: Sequence[bytes], index: int) -> list[bytes]:
    """PATH(m, D[n]): the sibling hashes from the leaf up, for leaf ``index``."""
    if not 0 <= index < len(leaves):
        raise IndexError(f"leaf {index} is not in a tree of {len(leaves)}")
    return _path(list(leaves), index, 0, len(leaves))


def _path(leaves: list[bytes], index: int, start: int, end: int) -> list[bytes]:
    n = end - start
    if n == 1:
        return []
    k = _split(n)
    if index < k:
        return [*_path(leaves, index, start, start + k), _root(leaves, start + k, end)]
    return [*_path(leaves, index - k, start + k, end), _root(leaves, start, start + k)]


def verify_inclusion(
    leaf: bytes, index: int, size: int, proof: Sequence[bytes], root: bytes
) -> bool:
    """RFC 9162 2.1.3.2: does ``proof`` lead from ``leaf`` (at ``index`` of ``size``) to
    ``root``?"""
    if not 0 <= index < size:
        return False
    fn, sn, r = index, size - 1, leaf
    for sibling in proof:
        if sn == 0:
            return False
        if fn & 1 or fn == sn:
            r = node_hash(sibling, r)
            while not fn & 1 and fn != 0:
                fn >>= 1
                sn >>= 1
        else:
            r = node_hash(r, sibling)
        fn >>= 1
        sn >>= 1
    return sn == 0 and r == root
