"""Request pipeline of the emulator: parsing, auth, faults, call log."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any
from urllib.parse import parse_qsl

from ._faults import FaultPlan
from ._methods import Workspace
from ._models import ApiCall
from ._state import ApiResult, error_result
from ._webhooks import parse_webhook_payload

__all__ = ["WEBHOOK_METHOD", "Engine", "Reply"]

#: Method name of webhook posts in the call log and for faults.
WEBHOOK_METHOD = "webhook"

_STATUS_ERRORS = {
    429: "ratelimited",
    500: "internal_error",
    502: "bad_gateway",
    503: "service_unavailable",
    504: "request_timeout",
}


@dataclass(frozen=True)
class Reply:
    """What the HTTP layer must send back (``None`` replies mean: drop)."""

    status: int
    body: bytes
    content_type: str
    headers: tuple[tuple[str, str], ...] = ()


def _multipart_fields(content_type: str, body: bytes) -> dict[str, Any]:
    # Imported lazily: only the retired files.upload sends multipart bodies.
    from email.message import Message
    from email.parser import BytesParser
    from email.policy import HTTP

    head = f"Content-Type: {content_type}\r\nMIME-Version: 1.0\r\n\r\n".encode()
    message = BytesParser(policy=HTTP).parsebytes(head + body)
    fields: dict[str, Any] = {}
    for part in message.walk():
        if not isinstance(part, Message) or part.is_multipart():
            continue
        name = part.get_param("name", header="content-disposition")
        if not isinstance(name, str):
            continue
        payload = part.get_payload(decode=True)
        data = payload if isinstance(payload, bytes) else b""
        if part.get_filename() is not None:
            fields[name] = f"<{len(data)} bytes>"
        else:
            fields[name] = data.decode("utf-8", "replace")
    return fields


def parse_params(content_type: str, query: str, body: bytes) -> dict[str, Any]:
    """Merge query-string and body parameters (form, JSON or multipart)."""
    params: dict[str, Any] = dict(parse_qsl(query, keep_blank_values=True))
    kind = content_type.split(";", 1)[0].strip().lower()
    if not body:
        return params
    if kind == "application/json":
        try:
            decoded = json.loads(body.decode("utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError):
            decoded = None
        if isinstance(decoded, dict):
            params.update(decoded)
    elif kind == "multipart/form-data":
        params.update(_multipart_fields(content_type, body))
    else:
        text = body.decode("utf-8", "replace")
        params.update(parse_qsl(text, keep_blank_values=True))
    return params


def _json_reply(result: ApiResult) -> Reply:
    return Reply(
        result.status,
        json.dumps(result.body).encode("utf-8"),
        "application/json; charset=utf-8",
        tuple(result.headers.items()),
    )


# Webhooks name a few failures differently ("rollup_error": Slack's
# changelog of 2016-05-17 on webhook errors).
_WEBHOOK_STATUS_ERRORS = {**_STATUS_ERRORS, 429: "rate_limited", 500: "rollup_error"}


def _html_reply(result: ApiResult) -> Reply:
    # Slack's edge answers server trouble with an HTML page, not JSON.
    page = (
        "<!DOCTYPE html><html><head><title>Slack</title></head><body>"
        f"<h1>{result.status} {result.error}</h1><p>Slack is having trouble "
        "handling this request. Please try again.</p></body></html>"
    )
    return Reply(
        result.status,
        page.encode("utf-8"),
        "text/html; charset=utf-8",
        tuple(result.headers.items()),
    )


def _text_reply(result: ApiResult) -> Reply:
    # Webhooks answer a bare word: "ok" or the error code, except a rate
    # limit, which comes as JSON.
    if result.status == 429:
        return _json_reply(result)
    return Reply(
        result.status,
        (result.error or "ok").encode("utf-8"),
        "text/plain; charset=utf-8",
        tuple(result.headers.items()),
    )


def _forced(status: int, method: str = "", error: str | None = None) -> ApiResult:
    names = _WEBHOOK_STATUS_ERRORS if method == WEBHOOK_METHOD else _STATUS_ERRORS
    return error_result(error or names.get(status, f"http_{status}"), status)


class Engine:
    """Turns raw HTTP requests into replies, applying faults and logging.

    Example:
        >>> ws = Workspace(("general",), None, ())
        >>> engine = Engine(ws, FaultPlan(0.0), token="xoxb-t")
        >>> engine.handle_api("auth.test", {}, "", b"").status
        200
    """

    def __init__(self, workspace: Workspace, faults: FaultPlan, token: str) -> None:
        """Wire a workspace, a fault plan and the only valid token."""
        self.workspace = workspace
        self.faults = faults
        self._token = token
        self._lock = threading.Lock()
        self._calls: list[ApiCall] = []
        self._changed = threading.Condition(self._lock)

    # --------------------------------------------------------------- call log

    def calls(self) -> list[ApiCall]:
        """Copy of the call log."""
        with self._lock:
            return [replace(c, params=dict(c.params)) for c in self._calls]

    def clear_calls(self) -> None:
        """Empty the call log."""
        with self._lock:
            self._calls.clear()

    def wait_for_change(self, timeout: float) -> None:
        """Block until a call is logged or ``timeout`` seconds pass."""
        with self._changed:
            self._changed.wait(timeout)

    def _log(
        self,
        method: str,
        params: Mapping[str, Any],
        status: int,
        error: str | None,
        started: float,
    ) -> None:
        call = ApiCall(method, dict(params), status, error, started)
        with self._changed:
            self._calls.append(call)
            self._changed.notify_all()

    def _answer(
        self, method: str, params: Mapping[str, Any], result: ApiResult, started: float
    ) -> Reply:
        self._log(method, params, result.status, result.error, started)
        if method == WEBHOOK_METHOD:
            return _text_reply(result)
        if result.status >= 500:
            return _html_reply(result)
        return _json_reply(result)

    # ------------------------------------------------------------------ API

    def _authenticate(self, headers: Mapping[str, str], params: dict[str, Any]) -> str:
        # The token must never reach the log: always remove it from params.
        form_token = params.pop("token", None)
        auth = headers.get("Authorization") or headers.get("authorization")
        if auth is not None:
            scheme, _, value = auth.partition(" ")
            if scheme.lower() != "bearer" or not value.strip():
                return "invalid_auth"
            token = value.strip()
        elif form_token:
            token = str(form_token)
        else:
            return "not_authed"
        return "" if token == self._token else "invalid_auth"

    def _prelude(
        self, method: str, params: Mapping[str, Any], started: float
    ) -> tuple[bool, Reply | None]:
        """Apply drop/latency/outage/fail_next.

        Returns:
            ``(handled, reply)``: when ``handled`` the request is finished and
            ``reply`` is sent (``None``: drop the connection).
        """
        if self.faults.take_drop(method):
            self._log(method, params, 0, "connection_dropped", started)
            return True, None
        delay = self.faults.latency
        if delay > 0:
            time.sleep(delay)
        if self.faults.outage:
            return True, self._answer(method, params, _forced(503, method), started)
        failure = self.faults.take_fail_next(method)
        if failure is not None:
            forced = _forced(failure[0], method, failure[1])
            return True, self._answer(method, params, forced, started)
        return False, None

    def handle_api(
        self, method: str, headers: Mapping[str, str], query: str, body: bytes
    ) -> Reply | None:
        """Answer ``POST /api/<method>``; ``None`` means drop the connection.

        Like Slack, every answer to an authenticated call names the token's
        scopes in the ``x-oauth-scopes`` header (what ``ppe-slacklog check``
        reads).
        """
        content_type = headers.get("Content-Type") or headers.get("content-type") or ""
        params = parse_params(content_type, query, body)
        auth_error = self._authenticate(headers, params)
        reply = self._handle_api(method, params, auth_error)
        if reply is None or auth_error or reply.status >= 500:
            return reply
        scopes = ("x-oauth-scopes", ",".join(self.workspace.scopes))
        return replace(reply, headers=(*reply.headers, scopes))

    def _handle_api(
        self, method: str, params: dict[str, Any], auth_error: str
    ) -> Reply | None:
        started = time.time()
        handled, reply = self._prelude(method, params, started)
        if handled:
            return reply
        if not self.workspace.knows(method):
            result = error_result("unknown_method", 404, req_method=method)
            return self._answer(method, params, result, started)
        if auth_error:
            return self._answer(method, params, error_result(auth_error), started)
        channel = params.get("channel") or params.get("channel_id")
        key = self.workspace.channel_key(str(channel) if channel else None)
        retry_after = self.faults.check_rate_limit(method, key)
        if retry_after is not None:
            limited = ApiResult(
                429,
                {"ok": False, "error": "ratelimited"},
                {"Retry-After": str(retry_after)},
            )
            return self._answer(method, params, limited, started)
        after_accept = self.faults.take_fail_after_accept(method)
        delay = self.faults.take_delay_after_accept(method)
        result = self.workspace.execute(method, params)
        if after_accept is not None:
            result = _forced(after_accept[0], method, after_accept[1])
        reply = self._answer(method, params, result, started)
        if delay:
            # Logged (and stored) already; only the answer is late, so a
            # client with a short timeout gives up on an accepted call.
            time.sleep(delay)
        return reply

    def handle_webhook(
        self, path: str, headers: Mapping[str, str], body: bytes
    ) -> Reply | None:
        """Answer ``POST /services/<path>``; ``None`` means drop the connection.

        Faults apply under the method name ``"webhook"``; rate limits count
        per hook. The call log shows the hook's ID, never its secret.
        """
        started = time.time()
        method = WEBHOOK_METHOD
        hook_id, hook = self.workspace.find_webhook(path)
        content_type = headers.get("Content-Type") or headers.get("content-type") or ""
        payload = parse_webhook_payload(content_type, body)
        params: dict[str, Any] = {**(payload or {}), "hook": hook_id}
        handled, reply = self._prelude(method, params, started)
        if handled:
            return reply
        if hook is None:
            result = error_result("no_service", 404)
            return self._answer(method, params, result, started)
        if payload is None:
            result = error_result("invalid_payload", 400)
            return self._answer(method, params, result, started)
        retry_after = self.faults.check_rate_limit(method, hook.id)
        if retry_after is not None:
            limited = ApiResult(
                429,
                {"ok": False, "error": "rate_limited", "retry_after": retry_after},
                {"Retry-After": str(retry_after)},
            )
            return self._answer(method, params, limited, started)
        after_accept = self.faults.take_fail_after_accept(method)
        delay = self.faults.take_delay_after_accept(method)
        result = self.workspace.post_webhook(hook, payload)
        if after_accept is not None:
            result = _forced(after_accept[0], method, after_accept[1])
        reply = self._answer(method, params, result, started)
        if delay:
            time.sleep(delay)
        return reply

    def handle_upload(self, file_id: str, body: bytes) -> Reply | None:
        """Answer the raw POST of file bytes to an upload URL."""
        started = time.time()
        params: dict[str, Any] = {"file_id": file_id, "size": len(body)}
        handled, reply = self._prelude("upload", params, started)
        if handled:
            if reply is None:
                return None
            return Reply(reply.status, b"", "text/plain; charset=utf-8")
        if not self.workspace.store_upload(file_id, body):
            self._log("upload", params, 404, "file_not_found", started)
            return Reply(404, b"Not Found", "text/plain; charset=utf-8")
        self._log("upload", params, 200, None, started)
        return Reply(200, f"OK - {len(body)}".encode(), "text/plain; charset=utf-8")
