"""Threshold rules on reported metrics: :class:`Alert`.

A rule is plain data: the extension's watchdog (``ppe_slacklog._watchdog``)
evaluates it off the training thread on each trigger's observations and
logs an ``alert`` record when it starts or stops holding.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any, Final

__all__ = ["DEFAULT_COOLDOWN", "Alert"]

#: Seconds before a rule that alerted may alert again (30 minutes).
DEFAULT_COOLDOWN: Final = 1800.0


def _bound(name: str, value: Any) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValueError(f"Alert {name}= must be a number or None, got {value!r}")
    if not math.isfinite(value):
        raise ValueError(f"Alert {name}= must be finite, got {value!r}")
    return float(value)


class Alert:
    """A threshold rule on one reported metric.

    The rule holds when the metric's value is below ``below`` or above
    ``above``, on trigger events whose ``manager.epoch`` (finished epochs)
    is at least ``after_epoch``. It alerts once when it starts to hold (a
    WARNING record of kind ``alert``, posted in the run's thread, shown in
    the channel, with the extension's ``mention``), says once when it stops
    holding, and alerts again only when it starts to hold again at least
    ``cooldown`` seconds after its last alert. A non-finite value neither
    starts nor stops a rule (the non-finite alert covers it).

    Args:
        key: The observation key, as reported (``"val/loss"``).
        below: Alert when the value is below this.
        above: Alert when the value is above this.
        after_epoch: Only look at events from this epoch on (``3``: from the
            trigger at the end of the third epoch).
        cooldown: Seconds after an alert before this rule alerts again.
        message: The alert's text instead of the default, a format string
            like the other templates: it sees ``{default}``, ``{key}``,
            ``{value}``, ``{below}``, ``{above}``, ``{epoch}``,
            ``{iteration}`` and the observations by name (values escaped).

    Raises:
        ValueError: No key, neither bound, a bound that is not a finite
            number, ``below`` greater than ``above``, a negative
            ``after_epoch`` or ``cooldown``, a message that is not a string.

    Example:
        >>> rule = Alert("val/loss", above=2.0)
        >>> rule.holds(2.5), rule.holds(1.0)
        (True, False)
        >>> Alert("val/accuracy", below=0.5, after_epoch=3)
        Alert('val/accuracy', below=0.5, after_epoch=3)
    """

    __slots__ = ("above", "after_epoch", "below", "cooldown", "key", "message")

    def __init__(
        self,
        key: str,
        below: float | None = None,
        above: float | None = None,
        after_epoch: int = 0,
        cooldown: float = DEFAULT_COOLDOWN,
        message: str | None = None,
    ) -> None:
        if not isinstance(key, str) or not key:
            raise ValueError(f"Alert needs an observation key, got {key!r}")
        self.key = key
        self.below = _bound("below", below)
        self.above = _bound("above", above)
        if self.below is None and self.above is None:
            raise ValueError(f"Alert({key!r}) needs below= or above= (or both)")
        if (
            self.below is not None
            and self.above is not None
            and self.below > self.above
        ):
            raise ValueError(
                f"Alert({key!r}): below={below} is greater than above={above}, "
                "so the rule would always hold"
            )
        if isinstance(after_epoch, bool) or not isinstance(after_epoch, int):
            raise ValueError(f"Alert after_epoch= must be an int, got {after_epoch!r}")
        if after_epoch < 0:
            raise ValueError(f"Alert after_epoch= must be >= 0, got {after_epoch}")
        self.after_epoch = after_epoch
        if (
            isinstance(cooldown, bool)
            or not isinstance(cooldown, (int, float))
            or not cooldown >= 0
        ):
            raise ValueError(
                f"Alert cooldown= must be a number of seconds >= 0, got {cooldown!r}"
            )
        self.cooldown = float(cooldown)
        if message is not None and not isinstance(message, str):
            raise ValueError(f"Alert message= must be a string, got {message!r}")
        self.message = message

    @classmethod
    def of(cls, spec: Alert | Mapping[str, Any]) -> Alert:
        """A rule from an :class:`Alert` or a mapping of its arguments.

        The mapping form is what ``logging.config`` files can write.

        Example:
            >>> Alert.of({"key": "val/loss", "above": 2})
            Alert('val/loss', above=2.0)
        """
        if isinstance(spec, Alert):
            return spec
        if isinstance(spec, Mapping):
            try:
                return cls(**spec)
            except TypeError as exc:  # a misspelled or missing argument
                raise ValueError(
                    f"an alert rule takes key, below, above, after_epoch, "
                    f"cooldown and message; {exc} in {dict(spec)!r}"
                ) from None
        raise ValueError(
            f"alerts= takes ppe_slacklog.Alert rules (or mappings), got {spec!r}"
        )

    def holds(self, value: object) -> bool:
        """Whether ``value`` is out of bounds (never for non-numbers or NaN).

        Example:
            >>> Alert("acc", below=0.5).holds(0.2)
            True
        """
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            return False
        if self.below is not None and value < self.below:
            return True
        return self.above is not None and value > self.above

    def fields(self) -> dict[str, Any]:
        """The rule's part of an ``alert`` record's fields."""
        return {
            "key": self.key,
            "below": self.below,
            "above": self.above,
            "after_epoch": self.after_epoch,
            "message": self.message,
        }

    def __repr__(self) -> str:
        parts = [repr(self.key)]
        for name in ("below", "above"):
            value = getattr(self, name)
            if value is not None:
                parts.append(f"{name}={value!r}")
        if self.after_epoch:
            parts.append(f"after_epoch={self.after_epoch}")
        if self.cooldown != DEFAULT_COOLDOWN:
            parts.append(f"cooldown={self.cooldown!r}")
        if self.message is not None:
            parts.append(f"message={self.message!r}")
        return f"Alert({', '.join(parts)})"

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Alert):
            return NotImplemented
        return all(getattr(self, n) == getattr(other, n) for n in self.__slots__)

    def __hash__(self) -> int:
        return hash(tuple(getattr(self, n) for n in self.__slots__))
