"""How the library tells the user about delivery problems, without loops.

Diagnostics go to :mod:`warnings` (shown once per problem) and to the
``ppe_slacklog.diagnostics`` logger, which every SlackHandler ignores: a
Slack outage must not produce Slack messages about itself.
"""

from __future__ import annotations

import logging
import os
import sys
import threading
import weakref
from typing import Final

from . import _callsite
from ._callsite import CallSite

__all__ = ["DIAGNOSTICS_LOGGER", "Once", "SlackDeliveryWarning"]

DIAGNOSTICS_LOGGER: Final = "ppe_slacklog.diagnostics"
_logger = logging.getLogger(DIAGNOSTICS_LOGGER)
_state = threading.local()


def quiet() -> bool:
    """True where records must not reach a SlackHandler.

    On a sender thread (everything logged there is about delivery) and while
    a diagnostic is reported (with ``logging.captureWarnings(True)`` a warning
    becomes a ``py.warnings`` record) nothing may go back to Slack.
    """
    return _state.__dict__.get("active", False)  # type: ignore[no-any-return]


def mark_sender_thread() -> None:
    """Marks the current thread as a sender for :func:`quiet`."""
    _state.active = True
    _state.sender = True


class SlackDeliveryWarning(UserWarning):
    """Something could not be delivered to Slack as asked; training goes on."""


class Once:
    """Reports each distinct problem once (thread-safe).

    Args:
        site: Where the warnings point when no user code is on the stack
            (a sender thread, the interpreter's exit): the line that created
            the handler these problems belong to.
    """

    def __init__(self, site: CallSite | None = None) -> None:
        self.site = site
        self._seen: set[tuple[str, ...]] = set()
        # Re-entrant: a signal handler that logs may land inside warn().
        self._lock = threading.RLock()
        _instances.add(self)

    def warn(self, key: tuple[str, ...], message: str) -> bool:
        """Warns with ``message`` unless ``key`` was reported before."""
        with self._lock:
            if key in self._seen:
                return False
            self._seen.add(key)
        _state.active = True
        try:
            _logger.info("%s", message)
            _callsite.warn(message, SlackDeliveryWarning, fallback=self.site)
            if not _shown_somewhere():
                # Only SlackHandlers listen, and they never post diagnostics
                # (no loops): a delivery problem must still reach a person.
                sys.stderr.write(f"{message}\n")
        except Exception:
            # Warnings turned into errors (-W error) or a broken logging
            # handler: the report is lost, delivery must go on.
            pass
        finally:
            _state.active = _state.__dict__.get("sender", False)
        return True


def _reaches_a_person(logger: logging.Logger, level: int) -> bool:
    """Whether a record at ``level`` on ``logger`` reaches a handler that shows it.

    SlackHandlers (``shows_diagnostics = False``) and NullHandlers do not
    count; with no handler at all, logging's last resort (stderr) does.
    """
    if not logger.isEnabledFor(level):
        return False
    any_handler = False
    current: logging.Logger | None = logger
    while current is not None:
        for handler in current.handlers:
            any_handler = True
            if isinstance(handler, logging.NullHandler) or not getattr(
                handler, "shows_diagnostics", True
            ):
                continue
            if level >= handler.level:
                return True
        current = current.parent if current.propagate else None
    last = logging.lastResort
    return not any_handler and last is not None and level >= last.level


def _shown_somewhere() -> bool:
    """Whether the diagnostic just logged and warned reached a person."""
    if _reaches_a_person(_logger, logging.INFO):
        return True
    if getattr(logging, "_warnings_showwarning", None) is None:
        # Warnings are not routed through logging: Python prints them (or
        # the user's warning filters chose not to show them).
        return True
    return _reaches_a_person(logging.getLogger("py.warnings"), logging.WARNING)


_instances: weakref.WeakSet[Once] = weakref.WeakSet()


def _fresh_locks_in_child() -> None:
    # A lock held by another thread at fork time would stay held forever.
    for once in list(_instances):
        once._lock = threading.RLock()


os.register_at_fork(after_in_child=_fresh_locks_in_child)
