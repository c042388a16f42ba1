"""Validation of the ``metadata`` argument, and the JSON reading it shares.

``blocks`` (see ``_blocks``) arrives in the same two forms as ``metadata``:
a JSON value inside a JSON body, or a JSON string.
"""

from __future__ import annotations

import json
from typing import Any, TypeVar

__all__ = ["json_param", "parse_metadata"]

_T = TypeVar("_T")


def json_param(raw: Any, kind: type[_T], error: str) -> tuple[_T | None, str | None]:
    """Read an argument that is a JSON ``kind`` (list, dict) or its JSON string.

    ``slack_sdk`` sends lists and dicts inside its JSON body; a form-encoded
    call sends them as JSON strings.

    Args:
        raw: The parameter as sent (``None``/``""`` when absent).
        kind: The type the value must have.
        error: Slack's error code for a value that is not JSON or not a
            ``kind``.

    Returns:
        ``(None, None)`` when absent, ``(value, None)``, or ``(None, error)``.

    Example:
        >>> json_param('{"a": 1}', dict, "bad"), json_param([1], list, "bad")
        (({'a': 1}, None), ([1], None))
        >>> json_param("{", dict, "bad"), json_param("null", dict, "bad")
        ((None, 'bad'), (None, 'bad'))
    """
    if raw is None or raw == "":
        return None, None
    value = raw
    if isinstance(raw, (str, bytes)):
        try:
            value = json.loads(raw)
        except (json.JSONDecodeError, UnicodeDecodeError):
            return None, error
    if not isinstance(value, kind):
        return None, error
    return value, None


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
    value, error = json_param(raw, dict, "invalid_metadata_format")
    if value is None:
        return None, error
    event_type = value.get("event_type")
    payload = value.get("event_payload")
    if not isinstance(event_type, str) or not event_type.strip():
        return None, "invalid_metadata_schema"
    if not isinstance(payload, dict):
        return None, "invalid_metadata_schema"
    # A JSON round trip gives an independent copy of plain JSON values.
    copied: dict[str, Any] = json.loads(json.dumps(payload))
    return {"event_type": event_type, "event_payload": copied}, None
