"""Secrets (a bot token, a webhook URL) held so that they never show.

A :class:`Secret` is shown redacted by ``repr``, ``str`` and so by
``vars()`` of whatever holds it. Pickled, it writes only the name of the
environment variable it is read from again when loaded: an extension saved
in a checkpoint (``torch.save``, ``pickle``) carries no secret, and the
loading process supplies its own. ``copy.deepcopy`` keeps it, in memory.
"""

from __future__ import annotations

import os
from typing import Any, TypeVar

__all__ = ["Secret"]

_S = TypeVar("_S", bound="Secret")


class Secret:
    """A secret string that is never shown, pickled or copied into text.

    Args:
        value: The secret.
        env: The environment variable a pickled copy reads it from when
            loaded.

    Example:
        >>> token = Secret("xoxb-123", env="SLACK_BOT_TOKEN")
        >>> token
        <secret token>
        >>> token.reveal()
        'xoxb-123'
    """

    __slots__ = ("_env", "_value")

    def __init__(self, value: str, *, env: str) -> None:
        self._value = value
        self._env = env

    @classmethod
    def from_env(cls: type[_S], env: str) -> _S | None:
        """The secret in environment variable ``env``; ``None`` when unset or empty."""
        value = os.environ.get(env, "").strip()
        return cls(value, env=env) if value else None

    def reveal(self) -> str:
        """The secret itself, for the one place that sends it."""
        return self._value

    def label(self) -> str:
        """What reprs and messages show instead of the secret."""
        return "secret token"

    def __repr__(self) -> str:
        return f"<{self.label()}>"

    __str__ = __repr__

    def __reduce__(self) -> tuple[Any, ...]:
        # Only where to find it again: the loading process's environment.
        return (_reload, (type(self), self._env))

    def __copy__(self: _S) -> _S:
        return self

    def __deepcopy__(self: _S, memo: dict[int, Any]) -> _S:
        return self


def _reload(cls: type[Secret], env: str) -> Secret | None:
    return cls.from_env(env)
