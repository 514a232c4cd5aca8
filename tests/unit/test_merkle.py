"""Merkle trees: RFC 6962 known roots, proofs for every leaf of odd and even sizes, tampering."""

from __future__ import annotations

import hashlib

import pytest

from engine.merkle import EMPTY_ROOT, inclusion_proof, leaf_hash, merkle_root, verify_inclusion

# The certificate-transparency reference test vectors (RFC 6962 tree heads of sizes 1-8).
INPUTS = [
    b"",
    b"\x00",
    b"\x10",
    b"\x20\x21",
    b"\x30\x31",
    b"\x40\x41\x42\x43",
    bytes(range(0x50, 0x58)),
    bytes(range(0x60, 0x70)),
]
ROOTS = [
    "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
    "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
    "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
    "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
    "4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
    "76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
    "ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
    "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328",
]
LEAVES = [leaf_hash(data) for data in INPUTS]


@pytest.mark.parametrize("size", range(1, 9))
def test_roots_match_the_rfc6962_reference_vectors(size: int) -> None:
    assert merkle_root(LEAVES[:size]).hex() == ROOTS[size - 1]


def test_the_empty_tree_and_domain_separation() -> None:
    assert merkle_root([]) == EMPTY_ROOT == hashlib.sha256(b"").digest()
    assert leaf_hash(b"x") != hashlib.sha256(b"x").digest()  # leaves are prefixed


@pytest.mark.parametrize("size", [1, 2, 3, 5, 7, 8, 9, 16, 17, 100])
def test_every_leaf_has_a_proof_and_a_tampered_proof_fails(size: int) -> None:
    leaves = [leaf_hash(n.to_bytes(4, "big")) for n in range(size)]
    root = merkle_root(leaves)
    for index, leaf in enumerate(leaves):
        proof = inclusion_proof(leaves, index)
        assert len(proof) <= max(1, size - 1).bit_length()
        assert verify_inclusion(leaf, index, size, proof, root)
        assert not verify_inclusion(leaf_hash(b"forged"), index, size, proof, root)
        if size > 1:
            other = (index + 1) % size
            assert not verify_inclusion(leaf, other, size, proof, root)
        if proof:
            tampered = [bytes(32), *proof[1:]]
            assert not verify_inclusion(leaf, index, size, tampered, root)
            assert not verify_inclusion(leaf, index, size, proof[:-1], root)


def test_a_proof_for_a_leaf_outside_the_tree_is_refused() -> None:
    with pytest.raises(IndexError):
        inclusion_proof(LEAVES[:3], 3)
    assert not verify_inclusion(LEAVES[0], 5, 3, [], merkle_root(LEAVES[:3]))
