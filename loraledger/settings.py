"""The one base of every user setting: a frozen pydantic model validated on construction.

A :class:`Settings` subclass declares its fields with types and defaults and its checks as
pydantic validators raising ``ValueError`` (or :class:`Invalid`, to carry a hint) with a
message that names the field and the bad value. Whatever way it is built (keywords,
:meth:`~pydantic.BaseModel.model_validate` from a mapping, JSON), a bad value raises
:class:`~loraledger.errors.ConfigError` (a subclass's ``error_type``) with one line:

- a validator's own message as written ("fetch_workers must be positive, got 0");
- pydantic's for type errors, led by the field and ending with the value
  ("fetch_workers: input should be a valid integer, got 'four'");
- "VerifyPolicy has no setting 'bogus'" for an unknown field, "... needs 'x'" for a
  missing one.

Instances are frozen (assigning a field raises) and unknown fields are refused. A nested
settings value given as a mapping is built by its own class, so its error names its own field.
:meth:`Settings.replace` is the validated copy with some fields changed (``model_copy``
does not validate).
"""

from __future__ import annotations

from typing import Any, ClassVar, NoReturn, Self

from pydantic import BaseModel, ConfigDict, ValidationError
from pydantic_core import ErrorDetails

from loraledger.errors import ConfigError, LoRALedgerError

__all__ = ["Invalid", "Settings"]


class Invalid(ValueError):
    """A validator's refusal of a value, with a ``hint`` for the user (what to do instead)."""

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(message)
        self.hint = hint


class Settings(BaseModel):
    """Base of the user settings: frozen, unknown fields refused, errors as ``error_type``."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    error_type: ClassVar[type[LoRALedgerError]] = ConfigError
    """What a bad value raises: :class:`ConfigError` unless a layer has its own (storage)."""

    def __init__(self, /, **data: Any) -> None:
        try:
            super().__init__(**data)
        except ValidationError as exc:
            type(self)._refuse(exc)

    @classmethod
    def model_validate(cls, obj: Any, **options: Any) -> Self:
        try:
            return super().model_validate(obj, **options)
        except ValidationError as exc:
            cls._refuse(exc)

    @classmethod
    def model_validate_json(cls, json_data: str | bytes | bytearray, **options: Any) -> Self:
        try:
            return super().model_validate_json(json_data, **options)
        except ValidationError as exc:
            cls._refuse(exc)

    @classmethod
    def model_validate_strings(cls, obj: Any, **options: Any) -> Self:
        try:
            return super().model_validate_strings(obj, **options)
        except ValidationError as exc:
            cls._refuse(exc)

    def replace(self, **changes: Any) -> Self:
        """A copy with ``changes``, validated like a new instance (unlike ``model_copy``)."""
        return type(self)(**{**dict(self), **changes})

    @classmethod
    def _refuse(cls, exc: ValidationError) -> NoReturn:
        raise refusal(exc, cls.error_type) from None


def refusal(
    exc: ValidationError, error_type: type[LoRALedgerError] = ConfigError
) -> LoRALedgerError:
    """A pydantic validation error as one of ours: one line per bad value, naming the field and
    the value (for models that are not :class:`Settings`, such as a ``PeftSpec`` from options)."""
    lines: list[str] = []
    hint: str | None = None
    for error in exc.errors():
        line, error_hint = _describe(error, exc.title)
        lines.append(line)
        hint = hint or error_hint
    return error_type("; ".join(lines), hint=hint)


def _describe(error: ErrorDetails, model: str) -> tuple[str, str | None]:
    """One error as a line that names the field and the value, and its hint if any."""
    where = ".".join(str(part) for part in error["loc"])
    cause = (error.get("ctx") or {}).get("error")
    if error["type"] == "value_error" and isinstance(cause, ValueError):
        return str(cause), getattr(cause, "hint", None)
    if error["type"] == "extra_forbidden":
        return f"{model} has no setting {where!r}", None
    if error["type"] == "missing":
        return f"{model} needs {where!r}", None
    message = error["msg"]
    message = message[:1].lower() + message[1:]
    return f"{where or model}: {message}, got {error['input']!r}", None
