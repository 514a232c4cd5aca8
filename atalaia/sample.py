"""The demo's built-in sample: handbook card transactions plus generated GiftPix traffic.

Handbook rows are read from the shared data file at run time (it is not redistributed with
the code); without it, card transactions are generated with the same shape instead.
"""

from __future__ import annotations

import csv
import gzip
import hashlib
import hmac
import json
import random
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from itertools import islice
from pathlib import Path

from schemas.models import (
    Channel,
    GiftEvent,
    GiftEventType,
    InputEvent,
    TransactionEvent,
    TransactionType,
)

# Demo-only key: lets the sample carry realistically shaped identity hashes.
_DEMO_HASH_KEY = b"atalaia-demo-sample"


def demo_identity_hash(value: str) -> str:
    return hmac.new(_DEMO_HASH_KEY, value.encode(), hashlib.sha256).hexdigest()


DISPOSABLE_EVERY = 97
"""Every so many handbook customers get a disposable-mail domain in the demo."""


def handbook_transaction(row: dict[str, str]) -> TransactionEvent:
    """One handbook CSV row as a card-payment TransactionEvent.

    Amounts are taken as BRL and the naive timestamps as Brasília local time.
    """
    customer, terminal = row["CUSTOMER_ID"], row["TERMINAL_ID"]
    occurred = datetime.strptime(row["TX_DATETIME"] + " -0300", "%Y-%m-%d %H:%M:%S %z")
    return TransactionEvent(
        event_id=f"hb-{row['TRANSACTION_ID']}",
        occurred_at=occurred,
        tx_type=TransactionType.CARD_PAYMENT,
        channel=Channel.POS,
        user_id=f"c{customer}",
        card_id=f"card-{customer}",
        amount_cents=int(Decimal(row["TX_AMOUNT"]) * 100),
        terminal_id=f"t{terminal}",
        country="BR",
        email_hash=demo_identity_hash(f"customer-{customer}@example.com"),
        # A few customers sign up with a disposable-mail domain (a default LOW list entry).
        email_domain="guerrillamail.com"
        if int(customer) % DISPOSABLE_EVERY == 0
        else "example.com",
    )


def read_handbook(path: Path, limit: int) -> list[TransactionEvent]:
    with gzip.open(path, "rt", newline="") as handle:
        return [handbook_transaction(row) for row in islice(csv.DictReader(handle), limit)]


def handbook_frauds(path: Path, limit: int) -> set[str]:
    """Event ids of the frauds among the first ``limit`` handbook rows (their labels)."""
    with gzip.open(path, "rt", newline="") as handle:
        rows = islice(csv.DictReader(handle), limit)
        return {f"hb-{row['TRANSACTION_ID']}" for row in rows if row["TX_FRAUD"] == "1"}


SYNTHETIC_SPACING_S = 30


def synthetic_transactions(count: int, start: datetime, seed: int = 7) -> list[TransactionEvent]:
    rng = random.Random(seed)
    return [
        TransactionEvent(
            event_id=f"syn-tx-{i}",
            occurred_at=start + timedelta(seconds=SYNTHETIC_SPACING_S * i),
            tx_type=rng.choice(list(TransactionType)),
            user_id=f"c{rng.randrange(500)}",
            amount_cents=rng.randrange(500, 50_000),
            country="BR",
        )
        for i in range(count)
    ]


def synthetic_transactions_until(count: int, end: datetime) -> list[TransactionEvent]:
    """Synthetic transactions whose last one happens at ``end`` (none in the future, which
    the engine would refuse)."""
    return synthetic_transactions(count, end - timedelta(seconds=SYNTHETIC_SPACING_S * count))


def generated_gifts(count: int, start: datetime, seed: int = 11) -> list[GiftEvent]:
    """GiftPix lives: creation, payment (sometimes failing), redemption attempts, refunds.

    About 5% of gifts are over the R$ 1.000 limit and 8% of payments fail, so the demo
    shows every verdict.
    """
    rng = random.Random(seed)
    events: list[GiftEvent] = []
    at = start
    gift_no = 0
    while len(events) < count:
        gift_no += 1
        gift, giver = f"gift-{gift_no}", f"giver-{rng.randrange(60)}"
        over_limit = rng.random() < 0.05
        amount = rng.randrange(100_001, 300_000) if over_limit else rng.randrange(2_000, 50_000)
        base = {
            "gift_id": gift,
            "giver_user_id": giver,
            "country": "BR",
            "recipient_key_hash": demo_identity_hash(f"pix-{gift_no}"),
        }

        def step(kind: GiftEventType, base: dict[str, str] = base, **extra: object) -> None:
            nonlocal at
            at += timedelta(seconds=rng.randrange(1, 90))
            events.append(
                GiftEvent.model_validate(
                    {
                        **base,
                        **extra,
                        "event_id": f"{base['gift_id']}-{len(events)}",
                        "occurred_at": at,
                        "event_type": kind,
                    }
                )
            )

        step(GiftEventType.GIFT_CREATED, amount_cents=amount)
        if over_limit:
            continue
        if rng.random() < 0.08:
            step(GiftEventType.PAYMENT_FAILED)
        step(GiftEventType.GIFT_PAID, amount_cents=amount)
        for _ in range(rng.choice([0, 0, 0, 1, 2])):
            step(GiftEventType.REDEEM_ATTEMPT, code_correct=False)
        if rng.random() < 0.1:
            step(GiftEventType.REFUND_REQUESTED, amount_cents=amount)
        else:
            step(GiftEventType.REDEEM_ATTEMPT, code_correct=True)
            step(GiftEventType.GIFT_REDEEMED)
    return events[:count]


@dataclass(frozen=True)
class InvalidSample:
    """A record the engine must dead-letter, and why (shown in the demo)."""

    topic_kind: str  # "transaction" | "login" | "gift"
    value: bytes
    expected_error: str


def invalid_samples(now: datetime) -> list[InvalidSample]:
    future = int((now + timedelta(days=2)).timestamp() * 1000)
    gift = {
        "event_id": "bad-1",
        "occurred_at": future,
        "event_type": "gift_created",
        "gift_id": "g",
        "giver_user_id": "u",
        "amount_cents": 1000,
    }
    negative = {**gift, "event_id": "bad-2", "occurred_at": 0, "amount_cents": -500}
    return [
        InvalidSample("transaction", b"\xff\xfenot an event", "MalformedPayload"),
        InvalidSample("gift", json.dumps(gift).encode(), "FutureTimestamp"),
        InvalidSample("gift", json.dumps(negative).encode(), "ValidationError"),
        InvalidSample("login", b"\x00\x00\x00\x03\xe7garbage", "UnknownSchemaId"),
    ]


def interleave(*streams: Sequence[InputEvent]) -> Iterator[InputEvent]:
    """Merge event lists by occurred_at, as upstream services would publish them."""
    return iter(sorted((e for s in streams for e in s), key=lambda e: e.occurred_at))
