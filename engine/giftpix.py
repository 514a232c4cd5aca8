"""The GiftPix MVP rules (pure): per-gift and per-day limits, failed payments, redemption
attempts, rapid creation, refunds and suspicious IPs; each one evaluator
(``engine.evaluators.Rule``). List hits on the giver, redeemer, recipient key or IP come
before them (``LIST_SECTION``).

>>> from config.rules import load_rules
>>> from engine.evaluators import Facts, reasons_of
>>> from engine.lists import NO_HITS
>>> from schemas.models import GiftEvent
>>> gift = GiftEvent(event_id="e1", occurred_at=1_700_000_000_000, event_type="payment_failed",
...                  gift_id="g1", giver_user_id="u1")
>>> facts = Facts(gift, {}, load_rules(), NO_HITS)
>>> [(r.code, r.points) for r in reasons_of([SECTION], facts)]
[('GIFT_PIX_FAILED', 20)]
"""

from __future__ import annotations

from engine.admission import subject_of
from engine.capypay import ALLOW_LISTED, LIST_HIT
from engine.evaluators import Facts, Fired, JudgedSection, Rule, Section, gift_of
from engine.features import (
    BLOCKED_FEATURE,
    ENTITY_BLOCKED_FEATURE,
    REFUND_IN_POLICY_FEATURE,
    REFUND_OF_REDEEMED_FEATURE,
    window_feature,
)
from engine.money import format_brl
from schemas.models import EventKind, GiftEventType

_GIFT = frozenset({EventKind.GIFT})
# What a fraud block stops: creating gifts and automatic refunds (giver blocked), redeeming
# them (gift blocked).
_BLOCKED_STEPS = frozenset(
    {
        GiftEventType.GIFT_CREATED,
        GiftEventType.REFUND_REQUESTED,
        GiftEventType.REDEEM_ATTEMPT,
        GiftEventType.GIFT_REDEEMED,
    }
)


def _created_amount(facts: Facts) -> int | None:
    """The amount of a gift creation (None: another step, or no amount)."""
    event = gift_of(facts)
    return event.amount_cents if event.event_type is GiftEventType.GIFT_CREATED else None


def _is(facts: Facts, step: GiftEventType) -> bool:
    return gift_of(facts).event_type is step


def _subject_blocked(facts: Facts) -> Fired | None:
    event = gift_of(facts)
    if facts.features.get(BLOCKED_FEATURE) and event.event_type in _BLOCKED_STEPS:
        points = facts.gift.points.subject_blocked
        return points, f"{subject_of(event).key} is under an active fraud block"
    return None


def _entity_blocked(facts: Facts) -> Fired | None:
    if facts.features.get(ENTITY_BLOCKED_FEATURE) and gift_of(facts).event_type in _BLOCKED_STEPS:
        what = "an entity of this action (IP, device, recipient...)"
        detail = f"{what} is under an active fraud block"
        return facts.gift.points.entity_blocked, detail
    return None


def _over_gift_limit(facts: Facts) -> Fired | None:
    amount, limits = _created_amount(facts), facts.gift.limits
    if amount is None or amount <= limits.max_amount_per_gift_cents:
        return None
    return (
        facts.gift.points.amount_over_gift_limit,
        f"gift of {format_brl(amount)} exceeds the "
        f"{format_brl(limits.max_amount_per_gift_cents)} per-gift limit",
    )


def _at_creation(facts: Facts, metric: str, stat: str, window: str) -> int | None:
    """The giver's window value a gift creation is judged on (None: another step)."""
    if _created_amount(facts) is None:
        return None
    return facts.features[window_feature(metric, stat, window)]


def _daily_count(facts: Facts) -> Fired | None:
    limits = facts.gift.limits
    created = _at_creation(facts, "gift_created", "count", limits.day_window)
    if created is None or created <= limits.max_gifts_per_day:
        return None
    return (
        facts.gift.points.daily_count_exceeded,
        f"{created} gifts created in {limits.day_window}, limit {limits.max_gifts_per_day}",
    )


def _daily_amount(facts: Facts) -> Fired | None:
    limits = facts.gift.limits
    total = _at_creation(facts, "gift_created", "amount_cents", limits.day_window)
    if total is None or total <= limits.max_amount_per_day_cents:
        return None
    return (
        facts.gift.points.daily_amount_exceeded,
        f"{format_brl(total)} in gifts in {limits.day_window}, limit "
        f"{format_brl(limits.max_amount_per_day_cents)}",
    )


def _failed_payments(facts: Facts) -> Fired | None:
    limits = facts.gift.limits
    failures = _at_creation(facts, "payment_failed", "count", limits.day_window)
    if failures is None or failures < limits.max_failed_payments_per_day:
        return None
    return (
        facts.gift.points.failed_payments_exceeded,
        f"{failures} failed gift payments in {limits.day_window}, limit "
        f"{limits.max_failed_payments_per_day}",
    )


def rapid_series(facts: Facts) -> int | None:
    """The giver's gifts created in ``rapid_creation_window`` when they reach
    ``rapid_creation_count`` (None: no rapid series), for any of the giver's gift steps."""
    patterns = facts.gift.patterns
    window = window_feature("gift_created", "count", patterns.rapid_creation_window)
    recent = facts.features.get(window, 0)
    return recent if recent >= patterns.rapid_creation_count else None


def _rapid_creation(facts: Facts) -> Fired | None:
    recent = rapid_series(facts) if _created_amount(facts) is not None else None
    if recent is None:
        return None
    window = facts.gift.patterns.rapid_creation_window
    return facts.gift.points.rapid_creation, f"{recent} gifts created in {window}"


def _refund_after_redemption(facts: Facts) -> Fired | None:
    if _is(facts, GiftEventType.REFUND_REQUESTED) and facts.features.get(
        REFUND_OF_REDEEMED_FEATURE
    ):
        points = facts.gift.points.refund_after_redemption
        return points, "the gift was already redeemed: no automatic refund"
    return None


def _refund_outside_policy(facts: Facts) -> Fired | None:
    if not _is(facts, GiftEventType.REFUND_REQUESTED) or facts.features.get(
        REFUND_IN_POLICY_FEATURE
    ):
        return None
    return (
        facts.gift.points.refund_outside_policy,
        f"no creation of this gift by its giver in the last "
        f"{facts.gift.limits.refund_window}: refund through support",
    )


def _mass_refund(facts: Facts) -> Fired | None:
    limits = facts.gift.limits
    if not _is(facts, GiftEventType.REFUND_REQUESTED):
        return None
    refunds = facts.features[window_feature("refund_requested", "count", limits.day_window)]
    if refunds <= limits.max_refunds_per_day:
        return None
    return (
        facts.gift.points.mass_refund,
        f"{refunds} refund requests in {limits.day_window}, limit {limits.max_refunds_per_day}",
    )


def _pix_failed(facts: Facts) -> Fired | None:
    if _is(facts, GiftEventType.PAYMENT_FAILED):
        return facts.gift.points.payment_failed, "PIX payment for the gift failed"
    return None


def _code_attempts(facts: Facts) -> tuple[int, int] | None:
    """Wrong codes and all attempts on this gift in the window, for a redemption attempt."""
    if not _is(facts, GiftEventType.REDEEM_ATTEMPT):
        return None
    window = facts.gift.patterns.code_attempts_window
    wrong = facts.features[window_feature("redeem_failed", "count", window)]
    return wrong, wrong + facts.features[window_feature("redeem_ok", "count", window)]


def _attempts_exceeded(facts: Facts) -> Fired | None:
    counted, limit = _code_attempts(facts), facts.gift.limits.max_code_attempts
    if counted is None or counted[1] <= limit:
        return None
    return (
        facts.gift.points.code_attempts_exceeded,
        f"{counted[1]} redemption attempts on this gift, limit {limit}",
    )


def _wrong_codes(facts: Facts) -> Fired | None:
    counted, limit = _code_attempts(facts), facts.gift.limits.max_code_attempts
    if counted is None or counted[1] > limit:
        return None  # not an attempt, or past the limit (scored by the rule above)
    if counted[0] < facts.gift.patterns.suspicious_code_attempts:
        return None
    return facts.gift.points.code_attempts, f"{counted[0]} wrong codes entered for this gift"


def _suspicious_ip(facts: Facts) -> Fired | None:
    flags = facts.gift.patterns.suspicious_network_flags
    suspicious = flags.intersection(gift_of(facts).network_flags)
    if not suspicious:
        return None
    return (
        facts.gift.points.suspicious_ip,
        f"actor IP flagged upstream as {', '.join(sorted(f.value for f in suspicious))}",
    )


_DAY = ("gift_created.count.*",)
RULES = (
    Rule(
        "GIFT_SUBJECT_BLOCKED",
        _subject_blocked,
        _GIFT,
        (BLOCKED_FEATURE,),
        "gift.points.subject_blocked",
        "a gift creation or refund of a blocked giver, a redemption step of a blocked gift",
        'GP 7 "Bloquear criação / resgate"',
    ),
    Rule(
        "GIFT_ENTITY_BLOCKED",
        _entity_blocked,
        _GIFT,
        (ENTITY_BLOCKED_FEATURE,),
        "gift.points.entity_blocked",
        "a gift creation, refund or redemption step naming an entity under a block",
        'GP 5.2 "Rate limit por IP", "Falhas consecutivas"',
    ),
    Rule(
        "GIFT_AMOUNT_OVER_LIMIT",
        _over_gift_limit,
        _GIFT,
        (),
        "gift.points.amount_over_gift_limit",
        "a gift created over max_amount_per_gift_cents",
        'GP 5.1 "Valor máximo por gift"',
    ),
    Rule(
        "GIFT_DAILY_COUNT_EXCEEDED",
        _daily_count,
        _GIFT,
        _DAY,
        "gift.points.daily_count_exceeded",
        "more than max_gifts_per_day gifts created by the giver in day_window",
        'GP 5.1 "Gifts por dia"',
    ),
    Rule(
        "GIFT_DAILY_AMOUNT_EXCEEDED",
        _daily_amount,
        _GIFT,
        ("gift_created.amount_cents.*",),
        "gift.points.daily_amount_exceeded",
        "the giver's gifts over max_amount_per_day_cents in day_window",
        'GP 5.1 "Valor máximo por dia"',
    ),
    Rule(
        "GIFT_FAILED_PAYMENTS_LIMIT",
        _failed_payments,
        _GIFT,
        ("payment_failed.count.*",),
        "gift.points.failed_payments_exceeded",
        "a gift created after max_failed_payments_per_day failed payments in day_window",
        'GP 5.1 "Tentativas de pagamento falho"',
    ),
    Rule(
        "GIFT_RAPID_CREATION",
        _rapid_creation,
        _GIFT,
        _DAY,
        "gift.points.rapid_creation",
        "rapid_creation_count gifts created in rapid_creation_window (window and count ours)",
        'GP 6 "Criação rápida de vários gifts"',
    ),
    Rule(
        "GIFT_REFUND_AFTER_REDEMPTION",
        _refund_after_redemption,
        _GIFT,
        (REFUND_OF_REDEEMED_FEATURE,),
        "gift.points.refund_after_redemption",
        "a refund request for a gift already redeemed: refused, the giver not blocked",
        'GP 5.3 "apenas se o gift nunca foi resgatado"',
    ),
    Rule(
        "GIFT_REFUND_OUTSIDE_POLICY",
        _refund_outside_policy,
        _GIFT,
        (REFUND_IN_POLICY_FEATURE,),
        "gift.points.refund_outside_policy",
        "a refund request for a gift its giver did not create within refund_window (ours): "
        "to support",
        'GP 5.3 "dentro da política configurada"',
    ),
    Rule(
        "GIFT_MASS_REFUND",
        _mass_refund,
        _GIFT,
        ("refund_requested.count.*",),
        "gift.points.mass_refund",
        "more than max_refunds_per_day refund requests by the giver in day_window (limit ours)",
        'GP 5.3 "Bloqueio de estornos em massa"',
    ),
    Rule(
        "GIFT_PIX_FAILED",
        _pix_failed,
        _GIFT,
        (),
        "gift.points.payment_failed",
        "a failed PIX payment",
        'GP 6 "Pix falhou"',
    ),
    Rule(
        "GIFT_CODE_ATTEMPTS_EXCEEDED",
        _attempts_exceeded,
        _GIFT,
        ("redeem_failed.count.*", "redeem_ok.count.*"),
        "gift.points.code_attempts_exceeded",
        "more than max_code_attempts redemption attempts, wrong or right, on the gift in "
        "code_attempts_window",
        'GP 5.2 "Tentativas de código: máx. 5"',
    ),
    Rule(
        "GIFT_CODE_ATTEMPTS",
        _wrong_codes,
        _GIFT,
        ("redeem_failed.count.*", "redeem_ok.count.*"),
        "gift.points.code_attempts",
        "within max_code_attempts: suspicious_code_attempts wrong codes on the gift in "
        "code_attempts_window (count ours)",
        'GP 6 "Muitas tentativas de código"',
    ),
    Rule(
        "GIFT_SUSPICIOUS_IP",
        _suspicious_ip,
        _GIFT,
        (),
        "gift.points.suspicious_ip",
        "the actor's IP flagged upstream with one of suspicious_network_flags",
        'GP 6 "IP suspeito"',
    ),
)
LIST_SECTION = JudgedSection((ALLOW_LISTED, LIST_HIT))
"""List hits on a gift's parties (fraud blocks are refused by the rules below): uncapped,
in the judge's order."""
SECTION = Section(RULES)
