"""Starting the library's background threads: daemons, never at shutdown."""

from __future__ import annotations

import threading
from collections.abc import Callable

__all__ = ["start_daemon"]


def start_daemon(target: Callable[[], None], name: str) -> threading.Thread | None:
    """Starts ``target`` on a daemon thread (it never keeps the process alive).

    Returns:
        The thread, or ``None`` when the interpreter is shutting down (Python
        3.12 refuses new threads then).

    Example:
        >>> start_daemon(lambda: None, "ppe_slacklog-example").daemon
        True
    """
    thread = threading.Thread(target=target, name=name, daemon=True)
    try:
        thread.start()
    except RuntimeError:  # the interpreter is shutting down
        return None
    return thread
