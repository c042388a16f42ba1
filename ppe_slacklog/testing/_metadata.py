"""Validation of the ``metadata`` argument of ``chat.postMessage``."""

from __future__ import annotations

import json
from typing import Any

__all__ = ["parse_metadata"]


def parse_metadata(raw: Any) -> tuple[dict[str, Any] | None, str | None]:
    """Validate message metadata as sent by a client.

    ``slack_sdk`` sends a dict inside its JSON body; callers may also pass a
    JSON string (inside a JSON body or form-encoded).

    Args:
        raw: The ``metadata`` parameter (``None``/``""`` when absent).

    Returns:
        ``(metadata, error)``: a normalized copy
        ``{"event_type": str, "event_payload": dict}`` (or ``None`` when
        absent) and ``None``; or ``(None, "<slack error code>")``.

    Example:
        >>> parse_metadata('{"event_type": "run", "event_payload": {"id": 1}}')
        ({'event_type': 'run', 'event_payload': {'id': 1}}, None)
        >>> parse_metadata("not json")
        (None, 'invalid_metadata_format')
        >>> parse_metadata({"event_type": "run"})
        (None, 'invalid_metadata_schema')
    """
    if raw is None or raw == "":
        return None, None
    value = raw
    if isinstance(raw, (str, bytes)):
        try:
            value = json.loads(raw)
        except (json.JSONDecodeError, UnicodeDecodeError):
            return None, "invalid_metadata_format"
    if not isinstance(value, dict):
        return None, "invalid_metadata_format"
    event_type = value.get("event_type")
    payload = value.get("event_payload")
    if not isinstance(event_type, str) or not event_type.strip():
        return None, "invalid_metadata_schema"
    if not isinstance(payload, dict):
        return None, "invalid_metadata_schema"
    # A JSON round trip gives an independent copy of plain JSON values.
    copied: dict[str, Any] = json.loads(json.dumps(payload))
    return {"event_type": event_type, "event_payload": copied}, None
