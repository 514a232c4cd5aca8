"""Labelled fraud scenarios: a seeded synthetic stream, and recall / FPR per behaviour.

The stream holds 30 days of ordinary activity of a population of users (so that windows,
usual devices, countries, amounts and payees exist before anything happens), the fraud
behaviours the engine is meant to stop, and legitimate look-alikes of them (travellers, VPN
users, new phones, busy businesses, shops paid by many customers, login typos, late refunds,
travellers paying someone new), each event labelled with the behaviour or group it belongs
to. Everything comes from one ``random.Random(seed)``: the same seed and size give the same
events, so a rules change is measured on the same traffic.

Labels: a fraud behaviour's name (``card_testing``...), ``legit:<group>`` for legitimate
events, and ``setup:<behaviour>`` for a fraudster's preparation steps that look like ordinary
use (paying the gifts later refunded): those are neither caught frauds nor false positives,
and are reported apart. Pure: no I/O, no clock (the stream ends at ``END``).
"""

from __future__ import annotations

import hashlib
import random
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from engine.identities import keyed_hash, normalise
from engine.list_import import ListRow
from engine.lists import entry_from_row
from schemas.models import (
    GiftEvent,
    InputEvent,
    ListEntityType,
    ListEntry,
    ListKind,
    ListSeverity,
    ListSource,
    LoginEvent,
    TransactionEvent,
    Verdict,
)

END = datetime(2026, 11, 1, tzinfo=UTC)
"""The stream ends here: fixed, so the same seed always gives the same timestamps."""
HISTORY_DAYS = 30
EPISODE_DAYS = 5
"""Fraud and look-alike episodes happen in the last days, after the users' history."""
DEFAULT_USERS = 400
DEFAULT_SEED = 7

FRAUD_BEHAVIOURS = (
    "giftpix_brute_force",
    "listed_entity",
    "giftpix_mass_creation",
    "refund_abuse",
    "card_testing",
    "account_takeover",
    "anonymised_ip",
    "credential_stuffing",
    "structuring",
)
LOOKALIKES = (
    "legit:traveller",
    "legit:vpn_user",
    "legit:new_device",
    "legit:busy_business",
    "legit:login_typo",
    "legit:late_refund",
    "legit:gift_season",
    "legit:gift_code_typo",
    "legit:shop_customers",
    "legit:traveller_payment",
)
NORMAL = "legit:normal"
LEGIT_PREFIX = "legit:"
SETUP_PREFIX = "setup:"
CAUGHT = frozenset({Verdict.REVIEW, Verdict.BLOCK})
REVIEW_BY_POLICY = frozenset({"legit:late_refund"})
"""Legitimate groups a person must look at by policy (a refund outside the automatic
refund window goes to REVIEW, never BLOCK): for them only a BLOCK is a false positive."""

GIFT_LIMIT_CENTS = 100_000
"""R$ 1.000, the per-gift limit mass creation stays just under."""
STRUCTURING_LIMITS_CENTS = (5_000_000, 1_000_000)
"""R$ 50.000 and R$ 10.000, the limits structuring stays just under."""
LISTED_WALLETS = (
    "0x7F367cC41522cE07553e823bf3be79A889DEbe1B",
    "0x098B716B8Aaf21512996dC57EB0615e2383E2f96",
)
"""Sanctioned wallets of ``config/default_lists.toml`` (so no list import is needed)."""
LISTED_PER_USERS = 40
"""One listed fraudster per this many ordinary users (at least one)."""
SCENARIO_HASH_KEY = b"atalaia-scenarios"
"""The key identities are hashed with when the caller gives none (upstream and the engine
must share it for lists to match, as in a deployment)."""
LOCAL_OFFSET = timedelta(hours=-3)

_BR_CITIES = ((-23.55, -46.63), (-22.91, -43.17), (-19.92, -43.94), (-8.05, -34.9))
_ABROAD = {"PT": (38.72, -9.14), "US": (25.76, -80.19), "AR": (-34.6, -58.38), "ES": (40.42, -3.7)}
_TAKEOVER = {"NG": (6.52, 3.38), "RU": (55.75, 37.62), "RO": (44.43, 26.1), "UA": (50.45, 30.52)}
_TOR_EXITS = {"DE": (52.52, 13.4), "NL": (52.37, 4.9), "SE": (59.33, 18.07), "US": (40.71, -74.0)}
_MAIL = ("gmail.com", "hotmail.com", "outlook.com", "uol.com.br", "yahoo.com.br")


@dataclass(frozen=True)
class Labelled:
    """One generated event and the behaviour or group it belongs to."""

    event: InputEvent
    label: str

    @property
    def is_fraud(self) -> bool:
        return not self.label.startswith((LEGIT_PREFIX, SETUP_PREFIX))


def _sha(value: str) -> str:
    return hashlib.sha256(value.encode()).hexdigest()


@dataclass
class _User:
    user_id: str
    device: str
    ip: str
    city: tuple[float, float]
    email_domain: str
    payees: list[str]
    usual_cents: int
    card: str
    hours: tuple[int, int]
    """Local hours the user is usually active in."""

    @property
    def email(self) -> str:
        return f"{self.user_id}@{self.email_domain}"

    @property
    def document_hash(self) -> str:
        return _sha(f"cpf-{self.user_id}")


@dataclass
class _Builder:
    """Accumulates labelled events; every random choice comes from ``rng``."""

    rng: random.Random
    hash_key: bytes = SCENARIO_HASH_KEY
    out: list[tuple[datetime, int, Labelled]] = field(default_factory=list)
    serial: int = 0

    def _next_id(self, prefix: str) -> str:
        self.serial += 1
        return f"sc-{prefix}-{self.serial}"

    def _add(self, event: InputEvent, label: str) -> None:
        self.out.append((event.occurred_at, self.serial, Labelled(event, label)))

    def email_hash(self, user: _User) -> str:
        """The user's e-mail as upstream sends it: its keyed hash (lists match it)."""
        return keyed_hash(normalise(ListEntityType.EMAIL, user.email), self.hash_key)

    def identities(self, user: _User) -> dict[str, str]:
        return {
            "email_hash": self.email_hash(user),
            "phone_hash": _sha(f"phone-{user.user_id}"),
            "document_hash": user.document_hash,
        }

    def ip(self) -> str:
        r = self.rng
        first = r.choice((177, 179, 187, 189, 191, 200, 201))
        return f"{first}.{r.randrange(256)}.{r.randrange(256)}.{r.randrange(1, 255)}"

    def user(self, name: str, email_domain: str | None = None) -> _User:
        r = self.rng
        start = r.randint(7, 12)
        return _User(
            user_id=name,
            device=f"dev-{name}-0",
            ip=self.ip(),
            city=r.choice(_BR_CITIES),
            email_domain=email_domain or r.choice(_MAIL),
            payees=[_sha(f"pix-{name}-{k}") for k in range(r.randint(2, 5))],
            usual_cents=int(r.lognormvariate(9.5, 0.7)),  # median ~R$ 130
            card=f"card-{name}",
            hours=(start, start + r.randint(8, 12)),
        )

    def local_time(self, user: _User, day: datetime) -> datetime:
        """A moment of ``day`` (UTC midnight) within the user's usual local hours."""
        hour = self.rng.uniform(user.hours[0], user.hours[1])
        return day + timedelta(hours=hour) - LOCAL_OFFSET

    def gift_amount(self, user: _User) -> int:
        """What an ordinary user puts in a gift: their usual amount, at most half the limit."""
        return min(self.usual_amount(user), GIFT_LIMIT_CENTS // 2)

    def usual_amount(self, user: _User) -> int:
        return max(100, int(user.usual_cents * self.rng.uniform(0.5, 1.6)))

    def tx(self, user: _User, at: datetime, label: str, **fields: Any) -> TransactionEvent:
        lat, lon = user.city
        base: dict[str, Any] = {
            "event_id": self._next_id("tx"),
            "occurred_at": at,
            "tx_type": "PIX_TRANSFER",
            "channel": "MOBILE_APP",
            "user_id": user.user_id,
            "account_id": f"acc-{user.user_id}",
            "amount_cents": self.usual_amount(user),
            "counterparty_pix_key_hash": self.rng.choice(user.payees),
            "device_id": user.device,
            "ip": user.ip,
            "country": "BR",
            "lat": lat,
            "lon": lon,
            "email_domain": user.email_domain,
            **self.identities(user),
        }
        merged = base | fields
        if merged["tx_type"] != "PIX_TRANSFER" and "counterparty_pix_key_hash" not in fields:
            merged["counterparty_pix_key_hash"] = None
        event = TransactionEvent.model_validate(merged)
        self._add(event, label)
        return event

    def card(self, user: _User, at: datetime, label: str, **fields: Any) -> TransactionEvent:
        merchant = self.rng.randrange(400)
        return self.tx(
            user,
            at,
            label,
            **{
                "tx_type": "CARD_PAYMENT",
                "channel": "POS",
                "card_id": user.card,
                "merchant_id": f"merchant-{merchant}",
                "terminal_id": f"term-{merchant}",
                **fields,
            },
        )

    def login(self, user: _User, at: datetime, label: str, **fields: Any) -> LoginEvent:
        lat, lon = user.city
        base: dict[str, Any] = {
            "event_id": self._next_id("login"),
            "occurred_at": at,
            "user_id": user.user_id,
            "success": True,
            "method": self.rng.choice(("PASSWORD", "BIOMETRIC", "OTP")),
            "ip": user.ip,
            "device_fingerprint": user.device,
            "user_agent": "CapyPay/5.2 (Android 14)",
            "country": "BR",
            "lat": lat,
            "lon": lon,
            "email_hash": self.email_hash(user),
            "email_domain": user.email_domain,
        }
        merged = base | fields
        if not merged["success"]:
            merged.setdefault("failure_reason", "BAD_PASSWORD")
            merged["method"] = "PASSWORD"
        event = LoginEvent.model_validate(merged)
        self._add(event, label)
        return event

    def gift(
        self, user: _User, at: datetime, kind: str, gift_id: str, label: str, **fields: Any
    ) -> GiftEvent:
        base: dict[str, Any] = {
            "event_id": self._next_id("gift"),
            "occurred_at": at,
            "event_type": kind,
            "gift_id": gift_id,
            "giver_user_id": user.user_id,
            "ip": user.ip,
            "device_id": user.device,
            "country": "BR",
            "user_agent": "CapyPay/5.2 (Android 14)",
            **self.identities(user),
        }
        event = GiftEvent.model_validate(base | fields)
        self._add(event, label)
        return event

    def paid_gift(
        self, user: _User, at: datetime, cents: int, label: str, **fields: Any
    ) -> tuple[str, datetime]:
        """A gift created and paid a minute later: its id and when it was paid."""
        gift_id = self._next_id("g")
        recipient = _sha(f"recipient-{gift_id}")
        common = {"amount_cents": cents, "recipient_key_hash": recipient, **fields}
        self.gift(user, at, "gift_created", gift_id, label, **common)
        paid_at = at + timedelta(seconds=self.rng.randint(20, 120))
        self.gift(user, paid_at, "gift_paid", gift_id, label, **common)
        return gift_id, paid_at

    def sorted(self) -> list[Labelled]:
        """Time order; the tail of an episode running past ``END`` is left out."""
        kept = (t for t in self.out if t[0] < END)
        return [item for *_, item in sorted(kept, key=lambda t: (t[0], t[1]))]


def _count(users: int, per: int) -> int:
    """Episodes of one kind: one per ``per`` users, at least one."""
    return max(1, users // per)


def listed_rows(users: int = DEFAULT_USERS) -> list[ListRow]:
    """The block-list entries the stream's listed fraudsters are on: their e-mails, MEDIUM
    and HIGH in turn (a LOW entry only asks for monitoring, as the seed has it)."""
    return [
        ListRow(
            ListEntityType.EMAIL,
            normalise(ListEntityType.EMAIL, f"listed-{n}@example.com"),
            ListSeverity.HIGH if n % 2 else ListSeverity.MEDIUM,
            ListSource.MANUAL,
            "known fraudster",
        )
        for n in range(_count(users, LISTED_PER_USERS))
    ]


def generate(
    seed: int = DEFAULT_SEED, users: int = DEFAULT_USERS, hash_key: bytes = SCENARIO_HASH_KEY
) -> list[Labelled]:
    """The labelled stream, in time order; ``users`` ordinary users (400: ~30,000 events);
    identities hashed with ``hash_key``, as upstream would with the engine's key."""
    rng = random.Random(seed)
    b = _Builder(rng, hash_key)
    first_day = END - timedelta(days=HISTORY_DAYS)
    episodes_from = END - timedelta(days=EPISODE_DAYS)
    people = [b.user(f"u{n:05d}") for n in range(users)]
    for person in people:
        _history(b, person, first_day, END)
    pool = list(people)
    rng.shuffle(pool)

    def take() -> _User:
        person = pool.pop() if pool else rng.choice(people)
        return person

    def when(last_hours: float = EPISODE_DAYS * 24 - 2) -> datetime:
        return episodes_from + timedelta(hours=rng.uniform(0, last_hours))

    for n in range(_count(users, LISTED_PER_USERS)):
        _brute_force(b, n, rng.sample(people, min(len(people), 6)), when())
        _listed(b, n, first_day + timedelta(days=HISTORY_DAYS - 6))
        _mass_creation(b, n, when())
        _card_testing(b, n, when())
        _credential_stuffing(b, n, people, when())
    for _ in range(_count(users, 20)):
        _traveller(b, take(), when(EPISODE_DAYS * 24 - 80))
        _vpn_user(b, take(), when())
        _new_device(b, take(), when())
    for n in range(_count(users, 14)):
        _anonymised(b, take(), when())
        _takeover(b, take(), when())
        _refund_abuse(b, n, first_day, when(EPISODE_DAYS * 24 - 30))
        _structuring(b, take(), when())
    for _ in range(_count(users, 10)):
        _login_typo(b, take(), when())
    for _ in range(_count(users, 4)):
        _late_refund(b, take(), when())
    for _ in range(_count(users, 16)):
        _gift_season(b, take(), when(EPISODE_DAYS * 24 - 40))
    for n in range(_count(users, 100)):
        _busy_business(b, n, first_day)
    for _ in range(_count(users, 10)):
        _gift_code_typo(b, take(), when(EPISODE_DAYS * 24 - 32))
    for n in range(_count(users, 100)):
        _shop_customers(b, n, people)
    for _ in range(_count(users, 4)):
        _traveller_payment(b, take(), when(EPISODE_DAYS * 24 - 20))
    return b.sorted()


def _history(b: _Builder, user: _User, start: datetime, end: datetime, label: str = NORMAL) -> None:
    """A month of ordinary use: logins, PIX to usual payees, card payments, a few crypto
    swaps and gifts created, paid and redeemed (``label``: a fraudster's account building a
    track record is set-up, not legitimate traffic)."""
    r = b.rng
    day = start
    while day < end - timedelta(days=2):
        for _ in range(r.choice((0, 0, 1, 1, 1, 2, 2, 2))):
            at = b.local_time(user, day)
            b.login(user, at, label)
            roll = r.random()
            then = at + timedelta(seconds=r.randint(30, 600))
            if roll < 0.45:
                b.tx(user, then, label)
            elif roll < 0.77:
                b.card(user, then, label)
            elif roll < 0.8:  # two small purchases at two shops (a coffee, a snack)
                first = b.card(user, then, label, amount_cents=r.randint(300, 1000))
                gap = timedelta(minutes=r.uniform(2, 40))
                b.card(user, first.occurred_at + gap, label, amount_cents=r.randint(300, 1000))
            elif roll < 0.86:
                wallet = "0x" + _sha(f"wallet-{user.user_id}")[:40]
                b.tx(user, then, label, tx_type="CRYPTO_SWAP", counterparty_wallet=wallet)
            elif roll < 0.93:
                gift_id, paid = b.paid_gift(user, then, b.gift_amount(user), label)
                redeemed = paid + timedelta(hours=r.uniform(1, 30))
                if redeemed < end:
                    redeemer = {"redeemer_user_id": f"r-{gift_id}", "device_id": f"dev-r-{gift_id}"}
                    b.gift(
                        user,
                        redeemed,
                        "redeem_attempt",
                        gift_id,
                        label,
                        code_correct=True,
                        **redeemer,
                    )
                    b.gift(
                        user,
                        redeemed + timedelta(seconds=5),
                        "gift_redeemed",
                        gift_id,
                        label,
                        **redeemer,
                    )
        day += timedelta(days=1)


def _brute_force(b: _Builder, n: int, givers: list[_User], at: datetime) -> None:
    """Wrong codes on several people's gifts from one device and IP, within minutes."""
    r = b.rng
    attacker = {"redeemer_user_id": f"bf-{n}", "device_id": f"dev-bf-{n}", "ip": b.ip()}
    for giver in givers:
        gift_id, _ = b.paid_gift(
            giver, at - timedelta(hours=r.uniform(2, 20)), b.gift_amount(giver), NORMAL
        )
        for _ in range(r.randint(1, 3)):
            at += timedelta(seconds=r.randint(5, 90))
            b.gift(
                giver,
                at,
                "redeem_attempt",
                gift_id,
                "giftpix_brute_force",
                code_correct=False,
                **attacker,
            )


def _listed(b: _Builder, n: int, start: datetime) -> None:
    """A known fraudster, listed by e-mail (``listed_rows``): logins, PIX, gifts, and crypto
    swaps to a sanctioned wallet of the default lists. Every other one's gift events carry
    no e-mail, phone or document (only the giver's user id), as upstream services may send
    them."""
    r = b.rng
    user = b.user(f"listed-{n}", email_domain="example.com")
    bare = {"email_hash": None, "phone_hash": None, "document_hash": None} if n % 2 else {}
    for day in range(6):
        at = b.local_time(user, start + timedelta(days=day))
        b.login(user, at, "listed_entity")
        then = at + timedelta(seconds=r.randint(30, 300))
        draw = r.random()
        if draw < 0.3:
            wallet = r.choice(LISTED_WALLETS)
            b.tx(user, then, "listed_entity", tx_type="CRYPTO_SWAP", counterparty_wallet=wallet)
        elif draw < 0.6:
            b.paid_gift(user, then, b.gift_amount(user), "listed_entity", **bare)
        else:
            b.tx(user, then, "listed_entity")


def _mass_creation(b: _Builder, n: int, at: datetime) -> None:
    """Gifts just under the per-gift limit, in quick succession, from one device."""
    r = b.rng
    giver = b.user(f"mass-{n}")
    b.login(giver, at - timedelta(minutes=2), "setup:giftpix_mass_creation")
    for _ in range(r.randint(5, 8)):
        cents = int(GIFT_LIMIT_CENTS * r.uniform(0.85, 1.0))
        _, paid = b.paid_gift(giver, at, cents, "giftpix_mass_creation")
        at = paid + timedelta(seconds=r.randint(10, 120))


def _refund_abuse(b: _Builder, n: int, first_day: datetime, at: datetime) -> None:
    """An account with a few weeks of ordinary use pays gifts over a day or two, then asks
    for refunds of most of them within an hour (and is not seen again)."""
    r = b.rng
    user = b.user(f"ra-{n}")
    _history(b, user, first_day, at - timedelta(days=2), "setup:refund_abuse")
    gifts = []
    for _ in range(r.randint(5, 7)):
        cents = b.gift_amount(user)
        created = at - timedelta(hours=r.uniform(3, 40))
        gifts.append((b.paid_gift(user, created, cents, "setup:refund_abuse")[0], cents))
    for gift_id, cents in gifts[: r.randint(4, len(gifts))]:
        at += timedelta(minutes=r.uniform(1, 12))
        b.gift(user, at, "refund_requested", gift_id, "refund_abuse", amount_cents=cents)


def _card_testing(b: _Builder, n: int, at: datetime) -> None:
    """Small charges on one card at many merchants within minutes, then a large one."""
    r = b.rng
    tester = b.user(f"ct-{n}")
    tester.card = f"card-stolen-{n}"
    for k in range(r.randint(10, 16)):
        at += timedelta(seconds=r.randint(5, 40))
        fields = {"merchant_id": f"ct-m-{n}-{k}", "terminal_id": f"ct-t-{n}-{k}"}
        b.card(
            tester,
            at,
            "card_testing",
            amount_cents=r.randint(100, 1000),
            channel="ECOMMERCE",
            **fields,
        )
    at += timedelta(minutes=r.uniform(1, 10))
    big = r.randint(50_000, 300_000)
    b.card(tester, at, "card_testing", amount_cents=big, channel="ECOMMERCE")


def _takeover(b: _Builder, user: _User, at: datetime) -> None:
    """A login from a new device in a new country, then PIX to new payees, well above usual."""
    r = b.rng
    country = r.choice(sorted(_TAKEOVER))
    lat, lon = _TAKEOVER[country]
    device, ip = f"dev-ato-{user.user_id}", b.ip()
    place = {"country": country, "lat": lat, "lon": lon, "ip": ip}
    b.login(user, at, "account_takeover", device_fingerprint=device, **place)
    for k in range(r.randint(3, 5)):
        at += timedelta(minutes=r.uniform(1, 8))
        cents = int(user.usual_cents * r.uniform(8, 25))
        payee = _sha(f"mule-{user.user_id}-{k}")
        b.tx(
            user,
            at,
            "account_takeover",
            amount_cents=cents,
            counterparty_pix_key_hash=payee,
            device_id=device,
            **place,
        )


def _anonymised(b: _Builder, user: _User, at: datetime) -> None:
    """A session through TOR (or a VPN from a new device): login, then a few PIX."""
    r = b.rng
    tor = r.random() < 0.7
    country = r.choice(sorted(_TOR_EXITS)) if tor else "BR"
    lat, lon = _TOR_EXITS[country] if tor else user.city
    fields = {
        "network_flags": ["TOR"] if tor else ["VPN"],
        "country": country,
        "lat": lat,
        "lon": lon,
        "ip": b.ip(),
        "device_id": f"dev-anon-{user.user_id}",
    }
    login_fields = fields | {"device_fingerprint": fields["device_id"]}
    del login_fields["device_id"]
    b.login(user, at, "anonymised_ip", **login_fields)
    for k in range(r.randint(2, 4)):
        at += timedelta(minutes=r.uniform(1, 6))
        payee = _sha(f"anon-payee-{user.user_id}-{k}")
        cents = int(user.usual_cents * r.uniform(1, 4))
        b.tx(
            user, at, "anonymised_ip", amount_cents=cents, counterparty_pix_key_hash=payee, **fields
        )


def _credential_stuffing(b: _Builder, n: int, people: list[_User], at: datetime) -> None:
    """One IP and device trying many accounts within minutes, a few logins succeeding."""
    r = b.rng
    scripted = n % 2 == 0  # half the campaigns pose as a browser
    agent = "python-requests/2.31" if scripted else "Mozilla/5.0 (Windows NT 10.0; Win64; x64)"
    fields = {"ip": b.ip(), "device_fingerprint": f"dev-cs-{n}", "user_agent": agent}
    for _ in range(r.randint(15, 25)):
        at += timedelta(seconds=r.uniform(1, 20))
        victim = r.choice(people)
        ok = r.random() < 0.1
        b.login(victim, at, "credential_stuffing", success=ok, method="PASSWORD", **fields)


def _structuring(b: _Builder, user: _User, at: datetime) -> None:
    """PIX transfers each just under a limit within a day, adding up well above it."""
    r = b.rng
    limit = r.choice(STRUCTURING_LIMITS_CENTS)
    payees = [_sha(f"struct-{user.user_id}-{k}") for k in range(2)]
    for _ in range(r.randint(3, 5)):
        cents = int(limit * r.uniform(0.8, 0.999))
        b.tx(
            user, at, "structuring", amount_cents=cents, counterparty_pix_key_hash=r.choice(payees)
        )
        at += timedelta(hours=r.uniform(0.5, 4))


def _traveller(b: _Builder, user: _User, at: datetime) -> None:
    """A user abroad after a plausible flight, own device, usual amounts, for a few days."""
    r = b.rng
    country = r.choice(sorted(_ABROAD))
    lat, lon = _ABROAD[country]
    at += timedelta(hours=14)  # the flight, since the history's last event at most
    place = {"country": country, "lat": lat, "lon": lon, "ip": b.ip()}
    for _ in range(r.randint(5, 7)):
        b.login(user, at, "legit:traveller", **place)
        b.card(
            user,
            at + timedelta(minutes=r.uniform(1, 20)),
            "legit:traveller",
            channel="POS",
            **place,
        )
        at += timedelta(hours=r.uniform(5, 14))
    friend = _sha(f"abroad-{user.user_id}")  # a PIX to someone new, a usual amount
    b.tx(user, at, "legit:traveller", counterparty_pix_key_hash=friend, **place)


def _traveller_payment(b: _Builder, user: _User, at: datetime) -> None:
    """A user abroad on their own phone logs in and pays someone new by PIX, several times
    their usual amount (a tour, a friend who paid the dinner): new country, new payee and an
    unusual amount, the look-alike of a takeover without its new device."""
    r = b.rng
    country = r.choice(sorted(_ABROAD))
    lat, lon = _ABROAD[country]
    place = {"country": country, "lat": lat, "lon": lon, "ip": b.ip()}
    at += timedelta(hours=14)  # the flight
    b.login(user, at, "legit:traveller_payment", **place)
    payee = _sha(f"abroad-payee-{user.user_id}")
    cents = int(user.usual_cents * r.uniform(3, 6))
    paid = at + timedelta(minutes=r.uniform(1, 30))
    b.tx(
        user,
        paid,
        "legit:traveller_payment",
        amount_cents=cents,
        counterparty_pix_key_hash=payee,
        **place,
    )


def _gift_season(b: _Builder, user: _User, at: datetime) -> None:
    """Gifts for the family in one evening: several creations minutes apart, usual amounts,
    each redeemed the next days."""
    r = b.rng
    for _ in range(r.randint(3, 4)):  # within the seed's 5 gifts a day
        gift_id, paid = b.paid_gift(user, at, b.gift_amount(user), "legit:gift_season")
        redeemer = {"redeemer_user_id": f"r-{gift_id}", "device_id": f"dev-r-{gift_id}"}
        redeemed = paid + timedelta(hours=r.uniform(2, 30))
        b.gift(
            user,
            redeemed,
            "redeem_attempt",
            gift_id,
            "legit:gift_season",
            code_correct=True,
            **redeemer,
        )
        at = paid + timedelta(minutes=r.uniform(2, 20))


def _gift_code_typo(b: _Builder, user: _User, at: datetime) -> None:
    """The recipient of a gift mistypes its code once or twice on their own phone, then
    enters it right: the look-alike of a brute force's first wrong codes."""
    r = b.rng
    gift_id, paid = b.paid_gift(user, at, b.gift_amount(user), NORMAL)
    redeemer = {"redeemer_user_id": f"r-{gift_id}", "device_id": f"dev-r-{gift_id}"}
    tried = paid + timedelta(hours=r.uniform(1, 30))
    label = "legit:gift_code_typo"
    for _ in range(r.randint(1, 2)):
        b.gift(user, tried, "redeem_attempt", gift_id, label, code_correct=False, **redeemer)
        tried += timedelta(seconds=r.uniform(5, 60))
    b.gift(user, tried, "redeem_attempt", gift_id, label, code_correct=True, **redeemer)
    b.gift(user, tried + timedelta(seconds=5), "gift_redeemed", gift_id, label, **redeemer)


def _shop_customers(b: _Builder, n: int, people: list[_User]) -> None:
    """A shop's PIX key paid by dozens of ordinary users at lunch every day: many senders to
    one payee in an hour, the look-alike of a money mule's key."""
    r = b.rng
    key = _sha(f"shop-{n}")
    day = END - timedelta(days=EPISODE_DAYS)
    while day < END - timedelta(days=1):
        rush = day + timedelta(hours=11.5) - LOCAL_OFFSET
        for customer in r.sample(people, min(len(people), r.randint(25, 45))):
            at = rush + timedelta(minutes=r.uniform(0, 120))
            cents = r.randint(1_500, 6_000)
            b.tx(
                customer,
                at,
                "legit:shop_customers",
                amount_cents=cents,
                counterparty_pix_key_hash=key,
            )
        day += timedelta(days=1)


def _vpn_user(b: _Builder, user: _User, at: datetime) -> None:
    """A user behind a VPN on their own device, usual amounts and payees."""
    r = b.rng
    fields = {"network_flags": ["VPN"], "ip": b.ip()}
    for _ in range(r.randint(3, 4)):
        b.login(user, at, "legit:vpn_user", **fields)
        b.tx(user, at + timedelta(minutes=r.uniform(1, 10)), "legit:vpn_user", **fields)
        at += timedelta(hours=r.uniform(6, 20))


def _new_device(b: _Builder, user: _User, at: datetime) -> None:
    """A new phone, same country, usual amounts and payees from then on."""
    r = b.rng
    user.device = f"dev-{user.user_id}-1"
    if r.random() < 0.5:  # a wrong password on the new phone first
        b.login(user, at - timedelta(seconds=30), "legit:new_device", success=False)
    for _ in range(r.randint(3, 4)):
        b.login(user, at, "legit:new_device")
        b.tx(user, at + timedelta(minutes=r.uniform(1, 10)), "legit:new_device")
        at += timedelta(hours=r.uniform(6, 20))


def _login_typo(b: _Builder, user: _User, at: datetime) -> None:
    """One or two wrong passwords, then the right one, on the user's own device."""
    r = b.rng
    for _ in range(r.randint(1, 2)):
        b.login(user, at, "legit:login_typo", success=False)
        at += timedelta(seconds=r.uniform(5, 40))
    b.login(user, at, "legit:login_typo", method="PASSWORD")


def _late_refund(b: _Builder, user: _User, at: datetime) -> None:
    """One refund of a gift paid 7 to 12 days earlier."""
    r = b.rng
    cents = b.gift_amount(user)
    gift_id, _ = b.paid_gift(user, at - timedelta(days=r.uniform(7, 12)), cents, NORMAL)
    b.gift(user, at, "refund_requested", gift_id, "legit:late_refund", amount_cents=cents)


def _busy_business(b: _Builder, n: int, start: datetime) -> None:
    """A shop paying many suppliers a day for a month, with busy hours of dozens of PIX."""
    r = b.rng
    shop = b.user(f"biz-{n}")
    shop.payees = [_sha(f"supplier-{n}-{k}") for k in range(60)]
    shop.hours = (8, 19)
    day = start
    while day < END - timedelta(days=1):
        busy = r.random() < 0.15
        for _ in range(r.randint(30, 50) if busy else r.randint(3, 8)):
            b.tx(
                shop,
                b.local_time(shop, day) if not busy else day + timedelta(hours=r.uniform(13, 15)),
                "legit:busy_business",
                channel="WEB",
            )
        day += timedelta(days=1)


@dataclass(frozen=True)
class GroupRow:
    """One behaviour or group: its events and how many were caught (REVIEW or BLOCK)."""

    group: str
    kind: str
    """``fraud``, ``legit`` or ``setup`` (set-up steps, not measured)."""
    events: int
    caught: int
    """REVIEW or BLOCK; only BLOCK for a group in :data:`REVIEW_BY_POLICY`."""
    reviewed: int = 0
    """Of a group in :data:`REVIEW_BY_POLICY`, the events sent to REVIEW as it asks."""

    @property
    def rate(self) -> float:
        """Recall for a fraud behaviour, false-positive rate for a legitimate group."""
        return self.caught / self.events if self.events else 0.0


@dataclass(frozen=True)
class ScenarioReport:
    rows: list[GroupRow]
    undecided: int

    def totals(self, kind: str) -> tuple[int, int]:
        """Events and caught events of the rows of one kind."""
        picked = [r for r in self.rows if r.kind == kind]
        return sum(r.events for r in picked), sum(r.caught for r in picked)

    @property
    def recall(self) -> float:
        events, caught = self.totals("fraud")
        return caught / events if events else 0.0

    @property
    def fpr(self) -> float:
        events, caught = self.totals("legit")
        return caught / events if events else 0.0

    @property
    def precision(self) -> float:
        """Of the caught events (set-up steps aside), the share that were fraud."""
        caught_fraud, caught_legit = self.totals("fraud")[1], self.totals("legit")[1]
        flagged = caught_fraud + caught_legit
        return caught_fraud / flagged if flagged else 0.0


def kind_of(label: str) -> str:
    if label.startswith(LEGIT_PREFIX):
        return "legit"
    return "setup" if label.startswith(SETUP_PREFIX) else "fraud"


def scenario_report(
    labels: Iterable[tuple[str, str]], verdicts: Mapping[str, Verdict]
) -> ScenarioReport:
    """Rows per label from (event id, label) pairs and each event's verdict: fraud
    behaviours first, then legitimate groups, then set-up steps; an event with no verdict
    counts as undecided, in no row.

    >>> r = scenario_report([("a", "x"), ("b", "x"), ("c", "legit:n")],
    ...                     {"a": Verdict.BLOCK, "b": Verdict.ALLOW, "c": Verdict.REVIEW})
    >>> [(row.group, row.events, row.caught) for row in r.rows], r.precision
    ([('x', 2, 1), ('legit:n', 1, 1)], 0.5)
    """
    events: Counter[str] = Counter()
    caught: Counter[str] = Counter()
    reviewed: Counter[str] = Counter()
    undecided = 0
    for event_id, label in labels:
        verdict = verdicts.get(event_id)
        if verdict is None:
            undecided += 1
            continue
        events[label] += 1
        if label in REVIEW_BY_POLICY:
            caught[label] += verdict is Verdict.BLOCK
            reviewed[label] += verdict is Verdict.REVIEW
        else:
            caught[label] += verdict in CAUGHT
    order = {"fraud": 0, "legit": 1, "setup": 2}
    known = {name: i for i, name in enumerate((*FRAUD_BEHAVIOURS, NORMAL, *LOOKALIKES))}
    groups = sorted(events, key=lambda g: (order[kind_of(g)], known.get(g, len(known)), g))
    rows = [GroupRow(g, kind_of(g), events[g], caught[g], reviewed[g]) for g in groups]
    return ScenarioReport(rows, undecided)


def listed_entries(hash_key: bytes, users: int, at: datetime) -> list[ListEntry]:
    """The block-list entries of the stream's listed fraudsters, as an analyst would have
    added them before the stream starts."""
    return [
        entry_from_row(row, ListKind.BLOCK, hash_key, "scenarios", at) for row in listed_rows(users)
    ]


def render_table(report: ScenarioReport) -> str:
    """Markdown: one row per behaviour and group, then the overall figures."""
    lines = ["| group | kind | events | caught | recall / FPR |", "|---|---|---:|---:|---:|"]
    for row in report.rows:
        measure = {"fraud": "recall", "legit": "FPR", "setup": "not measured"}[row.kind]
        shown = f"{measure} {row.rate:.1%}" if row.kind != "setup" else measure
        if row.group in REVIEW_BY_POLICY:
            shown += f" (BLOCK only; {row.reviewed:,} sent to REVIEW by policy)"
        lines.append(f"| {row.group} | {row.kind} | {row.events:,} | {row.caught:,} | {shown} |")
    fraud, caught_fraud = report.totals("fraud")
    legit, caught_legit = report.totals("legit")
    lines += [
        "",
        f"overall recall {report.recall:.1%}, FPR {report.fpr:.2%}, "
        f"precision {report.precision:.1%}"
        + (f"; {report.undecided} undecided" if report.undecided else ""),
        "",
        "| | caught | let through |",
        "|---|---:|---:|",
        f"| fraud | {caught_fraud:,} | {fraud - caught_fraud:,} |",
        f"| legitimate | {caught_legit:,} | {legit - caught_legit:,} |",
    ]
    return "\n".join(lines)
