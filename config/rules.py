"""Typed, frozen view of ``config/rules.toml``: the only source of thresholds and points."""

from __future__ import annotations

import tomllib
from importlib import resources
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from schemas.errors import describe_validation_error


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class ValidationPolicy(_Frozen):
    max_future_skew_seconds: int = Field(ge=0, le=86_400)


class Bands(_Frozen):
    low_below: int = Field(gt=0, le=100)
    medium_below: int = Field(gt=0, le=100)
    high_below: int = Field(gt=0, le=100)

    @model_validator(mode="after")
    def _ordered(self) -> Bands:
        if not self.low_below < self.medium_below < self.high_below:
            raise ValueError("bands must satisfy low_below < medium_below < high_below")
        return self


class FlowThresholds(_Frozen):
    """ALLOW below ``review_from``, BLOCK above ``block_above``, REVIEW in between."""

    review_from: int = Field(ge=0, le=100)
    block_above: int = Field(ge=0, le=100)

    @model_validator(mode="after")
    def _ordered(self) -> FlowThresholds:
        if self.review_from > self.block_above:
            raise ValueError("review_from must not exceed block_above")
        return self


class DecisionThresholds(_Frozen):
    login: FlowThresholds
    transaction: FlowThresholds
    gift: FlowThresholds


class GiftLimits(_Frozen):
    max_amount_per_gift_cents: int = Field(gt=0)


class GiftPoints(_Frozen):
    amount_over_gift_limit: int = Field(ge=0, le=100)
    payment_failed: int = Field(ge=0, le=100)


class GiftRules(_Frozen):
    limits: GiftLimits
    points: GiftPoints


class RuleSet(_Frozen):
    version: str = Field(min_length=1)
    validation: ValidationPolicy
    bands: Bands
    decision: DecisionThresholds
    gift: GiftRules


class RulesError(Exception):
    """The rules file is missing or invalid; the message is one line for the operator."""


def default_rules_path() -> Path:
    return Path(str(resources.files("config").joinpath("rules.toml")))


def load_rules(path: Path | None = None) -> RuleSet:
    path = path or default_rules_path()
    try:
        raw = tomllib.loads(path.read_text())
    except FileNotFoundError:
        raise RulesError(f"rules file not found: {path}") from None
    except tomllib.TOMLDecodeError as exc:
        raise RulesError(f"rules file {path} is not valid TOML: {exc}") from None
    try:
        return RuleSet.model_validate(raw)
    except ValidationError as exc:
        raise RulesError(f"rules file {path}: {describe_validation_error(exc)}") from None
