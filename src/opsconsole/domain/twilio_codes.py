"""Twilio error codes the console explains on sight, and whether retrying can help.

`transient` answers the runbook's "If transient, re-insert valid payloads" question: True means
the same payload may well go through later (carrier hiccup, our webhook briefly down, rate
limit); False means retrying the same payload will fail again (opt-out, bad number, blocked).
Meanings follow Twilio's Error and Warning Dictionary (https://www.twilio.com/docs/api/errors).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class TwilioCode:
    code: int
    meaning: str
    transient: bool


# Webhook failures: Twilio could not get a good answer from *our* endpoint.
WEBHOOK_CODES: frozenset[int] = frozenset({11200, 11205, 11217})
# The catch-all delivery failure the runbook names.
CATCH_ALL_CODE = 30008

_TABLE: tuple[TwilioCode, ...] = (
    # Authentication / API
    TwilioCode(20003, "authentication failed (Permission denied)", False),
    TwilioCode(20429, "too many requests (rate limited)", True),
    # Webhooks (Twilio calling our server)
    TwilioCode(11200, "HTTP retrieval failure (webhook)", True),
    TwilioCode(11205, "HTTP connection failure (webhook)", True),
    TwilioCode(11206, "HTTP protocol violation (webhook response malformed)", False),
    TwilioCode(11210, "HTTP bad host name (webhook URL does not resolve)", False),
    TwilioCode(11217, "HTTP error response code (webhook answered 4xx/5xx)", True),
    TwilioCode(11321, "invalid webhook URL configured", False),
    # Message creation (our API request rejected)
    TwilioCode(21211, "invalid 'To' phone number", False),
    TwilioCode(21408, "permission to send to this region not enabled", False),
    TwilioCode(21610, "recipient unsubscribed (replied STOP)", False),
    TwilioCode(21614, "'To' number is not a valid mobile number", False),
    # Delivery
    TwilioCode(30001, "queue overflow", True),
    TwilioCode(30002, "account suspended", False),
    TwilioCode(30003, "unreachable destination handset", True),
    TwilioCode(30004, "message blocked", False),
    TwilioCode(30005, "unknown destination handset", False),
    TwilioCode(30006, "landline or unreachable carrier", False),
    TwilioCode(30007, "message filtered by carrier", False),
    TwilioCode(30008, "unknown error (carrier catch-all)", True),
    TwilioCode(30009, "missing segment", True),
    TwilioCode(30010, "message price exceeds max price", False),
    TwilioCode(30034, "message from an unregistered number (US A2P 10DLC)", False),
)

TWILIO_CODES: dict[int, TwilioCode] = {c.code: c for c in _TABLE}


def _as_int(code: int | str | None) -> int | None:
    if code is None:
        return None
    if isinstance(code, int):
        return code
    text = code.strip()
    return int(text) if text.isdigit() else None


def lookup(code: int | str | None) -> TwilioCode | None:
    """The known entry for `code` (int or Twilio's string form), or None."""
    value = _as_int(code)
    return None if value is None else TWILIO_CODES.get(value)


def meaning(code: int | str | None) -> str:
    """A short meaning, or 'unknown code' so callers never need a None check."""
    entry = lookup(code)
    return entry.meaning if entry is not None else "unknown code (see twilio.com/docs/api/errors)"


def is_transient(code: int | str | None) -> bool | None:
    """True/False for known codes, None when we cannot tell."""
    entry = lookup(code)
    return None if entry is None else entry.transient


def is_webhook_failure(code: int | str | None) -> bool:
    value = _as_int(code)
    return value is not None and value in WEBHOOK_CODES
