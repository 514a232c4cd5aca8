"""Anchoring a day of audit batches on Stellar (pure: building, signing and checking need no
network; submitting is the caller's job).

The day's root is the RFC 6962 root over its batch roots (as leaves), ordered by chain and
first sequence. The transaction carries those 32 bytes twice, as its memo hash and as a
``manage_data`` value named ``atalaia:<day>``, and nothing else: no record, id or value.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

from stellar_sdk import Account, Keypair, Network, TransactionBuilder, TransactionEnvelope
from stellar_sdk.exceptions import BadSignatureError
from stellar_sdk.memo import HashMemo
from stellar_sdk.operation import ManageData

from engine.merkle import leaf_hash, merkle_root
from schemas.models import AuditAnchor, AuditBatch

PASSPHRASES = {
    "testnet": Network.TESTNET_NETWORK_PASSPHRASE,
    "public": Network.PUBLIC_NETWORK_PASSPHRASE,
}
BASE_FEE_STROOPS = 100


def day_batches(batches: Iterable[AuditBatch], day: str) -> list[AuditBatch]:
    """The batches closed on ``day`` (UTC), in anchoring order."""
    chosen = [b for b in batches if b.closed_at.date().isoformat() == day]
    return sorted(chosen, key=lambda b: (b.chain, b.first_sequence))


def day_root(batches: list[AuditBatch]) -> bytes:
    return merkle_root([leaf_hash(bytes.fromhex(b.root)) for b in batches])


def build_anchor(
    day: str,
    batches: list[AuditBatch],
    secret: str,
    network: str,
    sequence: int,
    at: datetime,
) -> AuditAnchor:
    """A signed transaction for ``day``'s root, built on account ``sequence``."""
    keypair = Keypair.from_secret(secret)
    root = day_root(batches)
    passphrase = PASSPHRASES[network]
    transaction = (
        TransactionBuilder(
            source_account=Account(keypair.public_key, sequence),
            network_passphrase=passphrase,
            base_fee=BASE_FEE_STROOPS,
        )
        .add_hash_memo(root)
        .append_manage_data_op(data_name=f"atalaia:{day}", data_value=root)
        .set_timeout(0)
        .build()
    )
    transaction.sign(keypair)
    return AuditAnchor(
        day=day,
        root=root.hex(),
        batch_ids=[b.batch_id for b in batches],
        network_passphrase=passphrase,
        source_account=keypair.public_key,
        envelope_xdr=transaction.to_xdr(),
        tx_hash=transaction.hash_hex(),
        submitted=False,
        created_at=at,
    )


def check_anchor(anchor: AuditAnchor, batches: Iterable[AuditBatch]) -> list[str]:
    """What is wrong with an anchor: its root against the batches it names, the root inside
    the envelope (memo and data entry), the signature; empty when all holds."""
    found: list[str] = []
    by_id = {b.batch_id: b for b in batches}
    missing = [batch_id for batch_id in anchor.batch_ids if batch_id not in by_id]
    if missing:
        found.append(f"batches {missing[:3]} not found")
    elif day_root([by_id[i] for i in anchor.batch_ids]).hex() != anchor.root:
        found.append("root does not match the batches it names")
    envelope = TransactionEnvelope.from_xdr(anchor.envelope_xdr, anchor.network_passphrase)
    transaction = envelope.transaction
    root = bytes.fromhex(anchor.root)
    memo = transaction.memo
    if not isinstance(memo, HashMemo) or memo.memo_hash != root:
        found.append("the envelope's memo hash is not the root")
    data = [op for op in transaction.operations if isinstance(op, ManageData)]
    if [op.data_value for op in data] != [root]:
        found.append("the envelope's manage_data entry is not the root")
    if transaction.source.account_id != anchor.source_account:
        found.append("signed by another account than it names")
    signer = Keypair.from_public_key(anchor.source_account)
    signed = [s for s in envelope.signatures if s.signature_hint == signer.signature_hint()]
    try:
        if not signed:
            raise BadSignatureError("no signature of the source account")
        signer.verify(envelope.hash(), signed[0].signature)
    except BadSignatureError:
        found.append("signature invalid")
    if envelope.hash_hex() != anchor.tx_hash:
        found.append("tx_hash does not match the envelope")
    return found
