"""Every topic name the engine uses, derived from one prefix. Nothing else names topics."""

from __future__ import annotations

from dataclasses import dataclass

from schemas.models import GiftEvent, InputEvent, LoginEvent, TransactionEvent

COMPACT = {"cleanup.policy": "compact"}


@dataclass(frozen=True)
class TopicSpec:
    name: str
    doc: str
    compacted: bool = False

    @property
    def config(self) -> dict[str, str]:
        return dict(COMPACT) if self.compacted else {}


@dataclass(frozen=True)
class Topics:
    """Topic names for one deployment (``prefix``); partition count comes from settings."""

    prefix: str

    def _name(self, suffix: str) -> str:
        return f"{self.prefix}.{suffix}"

    @property
    def transactions(self) -> str:
        return self._name("transactions")

    @property
    def logins(self) -> str:
        return self._name("logins")

    @property
    def gifts(self) -> str:
        return self._name("gifts")

    @property
    def validated(self) -> str:
        return self._name("events.validated")

    @property
    def decisions(self) -> str:
        return self._name("decisions")

    @property
    def dead_letters(self) -> str:
        return self._name("dlq")

    @property
    def fraud_events(self) -> str:
        return self._name("fraud-events")

    @property
    def fraud_blocks(self) -> str:
        return self._name("fraud-blocks")

    @property
    def lists(self) -> str:
        return self._name("lists")

    @property
    def account_states(self) -> str:
        return self._name("account-states")

    @property
    def watchlist(self) -> str:
        return self._name("watchlist")

    @property
    def case_commands(self) -> str:
        return self._name("case-commands")

    @property
    def cases(self) -> str:
        return self._name("cases")

    @property
    def labels(self) -> str:
        return self._name("labels")

    @property
    def models(self) -> str:
        return self._name("models")

    @property
    def known_frauds(self) -> str:
        return self._name("known-frauds")

    @property
    def shadow_decisions(self) -> str:
        return self._name("shadow-decisions")

    @property
    def alerts(self) -> str:
        return self._name("alerts")

    @property
    def config(self) -> str:
        return self._name("config")

    @property
    def audit(self) -> str:
        return self._name("audit")

    @property
    def audit_intake(self) -> str:
        return self._name("audit-intake")

    @property
    def audit_batches(self) -> str:
        return self._name("audit-batches")

    @property
    def audit_anchors(self) -> str:
        return self._name("audit-anchors")

    def input_models(self) -> dict[str, type[InputEvent]]:
        """Which event contract each input topic carries."""
        return {
            self.transactions: TransactionEvent,
            self.logins: LoginEvent,
            self.gifts: GiftEvent,
        }

    def input_topic_for(self, model: type[InputEvent]) -> str:
        return {m: t for t, m in self.input_models().items()}[model]

    def specs(self) -> list[TopicSpec]:
        return [
            TopicSpec(self.transactions, "TransactionEvent input (Avro or JSON)"),
            TopicSpec(self.logins, "LoginEvent input (Avro or JSON)"),
            TopicSpec(self.gifts, "GiftEvent input (Avro or JSON)"),
            TopicSpec(self.validated, "validated events, Avro, keyed by subject"),
            TopicSpec(self.decisions, "Decision output, Avro, keyed by subject"),
            TopicSpec(self.dead_letters, "DeadLetter: rejected input with the reason"),
            TopicSpec(self.fraud_events, "FraudEvent: every scored GiftPix action"),
            TopicSpec(self.fraud_blocks, "FraudBlock: blocked entities", compacted=True),
            TopicSpec(self.lists, "block/allow lists (hashed values)", compacted=True),
            TopicSpec(self.watchlist, "sanctioned/PEP names to screen", compacted=True),
            TopicSpec(
                self.account_states, "AccountState: frozen accounts, by user", compacted=True
            ),
            TopicSpec(self.case_commands, "CaseCommand: changes to cases, keyed by subject"),
            TopicSpec(self.cases, "Case: investigation cases, keyed by case id", compacted=True),
            TopicSpec(self.labels, "Label: case outcomes for learning, keyed by case id"),
            TopicSpec(self.models, "ModelSnapshot: signed online models, by name", compacted=True),
            TopicSpec(self.known_frauds, "KnownFrauds: labelled frauds per entity", compacted=True),
            TopicSpec(self.shadow_decisions, "ShadowDecision: a challenger's would-be decisions"),
            TopicSpec(self.alerts, "Alert: throttled alerts from the decisions"),
            TopicSpec(self.config, "runtime configuration changes", compacted=True),
            TopicSpec(self.audit_intake, "AuditRecord, unchained, from every producer"),
            TopicSpec(self.audit, "AuditRecord, chained, write-once", compacted=True),
            TopicSpec(self.audit_batches, "AuditBatch: Merkle roots of the audit chains"),
            TopicSpec(self.audit_anchors, "AuditAnchor: daily roots signed for Stellar"),
        ]
