"""The record contract between the training extension and the handlers.

Every training event is one :class:`logging.LogRecord` carrying the
attributes listed in ``docs/record-contract.md`` (``ppe_event``, ``run_id``,
``epoch``, ``iteration``, ``elapsed_time``, ``observations``, ``context``,
``filenames`` and, for errors, ``exc_info``). This module names those
attributes, snapshots the manager into plain values at emit time and reads a
record back into a :class:`TrainingEvent`. It imports neither torch nor
pytorch-pfn-extras, so handlers can use it in any program.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from types import MappingProxyType
from typing import Any, Final, Literal, NamedTuple, get_args

from ._safetext import Unprintable, describe, text_of

__all__ = [
    "ALERT_ATTR",
    "ALERT_KINDS",
    "DEFAULT_LOGGER",
    "EVENT_FIELDS",
    "EVENT_KINDS",
    "EXTRA_ATTR",
    "PROGRESS_ATTR",
    "EventKind",
    "EventSummary",
    "ManagerSnapshot",
    "Observation",
    "RunFacts",
    "TrainingEvent",
    "event_extra",
    "event_of",
    "plain_observations",
    "plain_value",
    "unprintable_values",
]

EventKind = Literal[
    "start",
    "trigger",
    "end",
    "error",
    "interrupted",
    "stopped",
    "stall",
    "resume_progress",
    "nonfinite",
    "alert",
]
#: Every event kind, in the order of :data:`EventKind`.
EVENT_KINDS: Final[tuple[EventKind, ...]] = get_args(EventKind)
#: The kinds the extension's watchdog emits (at WARNING; see
#: ``docs/record-contract.md``): their fields are in the ``alert`` attribute.
ALERT_KINDS: Final[frozenset[EventKind]] = frozenset(
    ("stall", "resume_progress", "nonfinite", "alert")
)
#: The record attribute holding an alert's own fields (a dict).
ALERT_ATTR: Final = "alert"

#: The logger the extension emits on unless told otherwise.
DEFAULT_LOGGER: Final = "ppe_slacklog.training"

Observation = float | int | str | bool

_EMPTY: Final[Mapping[str, Observation]] = MappingProxyType({})

# Further attributes, beyond the documented contract, that let a handler
# render the extension's own templates later without the live manager.
_TEMPLATE: Final = "ppe_template"
_MANAGER: Final = "ppe_manager"
_SOURCE: Final = "ppe_source"
# The extension's template already rendered at the event (see
# templates.renders_at_event): handlers use this text as it is.
_TEXT: Final = "ppe_text"
# How many [unprintable: ...] markers that text holds (for handlers' stats).
_TEXT_MARKERS: Final = "ppe_text_markers"
# The user's line that made the extension (a _callsite.CallSite): template
# and delivery warnings point there, whichever thread renders.
SITE_ATTR: Final = "ppe_site"
#: On start records of the extension: a function telling where the live
#: manager is now (a ``cardstate.Progress``), for a live card between events.
PROGRESS_ATTR: Final = "ppe_progress"
#: Fields added by a :class:`~ppe_slacklog.ProcessorFilter` (a dict).
EXTRA_ATTR: Final = "ppe_extra"

# Multi-element tensors are shown, not dumped: a reported weight matrix must
# not become a megabyte of Slack text.
_MAX_LIST_ELEMENTS: Final = 16
_PLAIN_TYPES: Final = frozenset({float, int, str, bool})
_MAX_TEXT: Final = 200


def plain_value(value: Any, name: str = "value") -> Observation:
    """Converts one reported value to a plain Python number or string.

    Tensors and NumPy scalars with one element become numbers (so format specs
    such as ``{loss:.3f}`` work); larger ones become a short text. A value
    that raises on the way (a meta-device tensor's ``item()``, a broken
    ``__str__``) becomes an :class:`~ppe_slacklog._safetext.Unprintable`
    marker, ``[unprintable: name]``: reporting never stops training.

    Example:
        >>> plain_value(3)
        3
        >>> import torch
        >>> plain_value(torch.tensor(0.5))
        0.5
        >>> plain_value(torch.empty(1, device="meta"), "val/x")
        '[unprintable: val/x]'
    """
    try:
        return _plain_value(value)
    except Exception as exc:
        return Unprintable(name, describe(exc))


def _plain_value(value: Any) -> Observation:
    if isinstance(value, (float, int, str, bool)):
        return value
    if type(value).__name__ == "Tensor":
        # The common case (a reported loss): skip the generic probing.
        try:
            item = value.item()
        except Exception:
            pass
        else:
            if isinstance(item, (bool, int, float)):
                return item
    numel = getattr(value, "numel", None)
    size = numel() if callable(numel) else getattr(value, "size", None)
    if isinstance(size, int) and hasattr(value, "item"):
        if size == 1:
            item = value.item()
            if isinstance(item, (bool, int, float, str)):
                return item
        elif size <= _MAX_LIST_ELEMENTS and hasattr(value, "tolist"):
            return str(value.tolist())
        else:
            shape = tuple(getattr(value, "shape", ()))
            return f"<{type(value).__name__} shape={shape}>"
    text = str(value)
    if type(text) is not str:
        text = str.__str__(text)  # a str subclass: its own __str__ is not text
    return text if len(text) <= _MAX_TEXT else text[: _MAX_TEXT - 1] + "…"


def plain_observations(observation: Mapping[str, Any]) -> dict[str, Observation]:
    """Snapshots ``manager.observation`` into plain values (see :func:`plain_value`).

    Never raises: what cannot be converted becomes a marker.

    Example:
        >>> plain_observations({"loss": 1, "note": "ok"})
        {'loss': 1, 'note': 'ok'}
    """
    try:
        # Reported Python numbers (the common case) skip the call to plain_value.
        return {
            key if type(key) is str else _key_text(key): (
                value
                if type(value) in _PLAIN_TYPES
                else plain_value(value, key if type(key) is str else _key_text(key))
            )
            for key, value in observation.items()
        }
    except Exception as exc:  # an observation that cannot even be iterated
        return {"observation": Unprintable("observation", describe(exc))}


def _key_text(key: object) -> str:
    try:
        text = str(key)
    except Exception:
        return f"<{type(key).__name__} key>"
    return text if type(text) is str else str.__str__(text)


def unprintable_values(
    observations: Mapping[str, Observation],
) -> list[Unprintable]:
    """The markers among ``observations`` (values that could not be converted).

    Example:
        >>> unprintable_values({"a": 1, "b": Unprintable("b")})
        ['[unprintable: b]']
    """
    return [v for v in observations.values() if type(v) is Unprintable]


_tuple_new = tuple.__new__


def _read(manager: Any, name: str, default: Any) -> Any:
    # A manager property may raise before training starts (elapsed_time) or
    # not exist at all (other manager kinds); the snapshot must not.
    try:
        return getattr(manager, name)
    except Exception:
        return default


def _number(value: Any, kind: type[int] | type[float], default: Any) -> Any:
    # A hand-made record or another kind of manager may hold anything here.
    try:
        return kind(value)
    except Exception:
        return default


class ManagerSnapshot(NamedTuple):
    """A read-only copy of the manager's state at the moment of an event.

    Templates see this object as ``manager``: ``{manager.epoch}``,
    ``{manager.iteration}``, ``{manager.epoch_detail}``,
    ``{manager.elapsed_time}``, ``{manager.max_epochs}``, ``{manager.out}``
    and ``{manager.observation[loss]}`` render the same whenever a handler
    formats the record, because nothing reads the live manager later.

    Example:
        >>> snap = ManagerSnapshot(epoch=2, iteration=200)
        >>> "Epoch #{manager.epoch}".format(manager=snap)
        'Epoch #2'
    """

    epoch: int = 0
    iteration: int = 0
    epoch_detail: float = 0.0
    elapsed_time: float = 0.0
    max_epochs: int | None = None
    out: str | None = None
    observation: Mapping[str, Observation] = _EMPTY

    @classmethod
    def of(
        cls, manager: Any, observations: dict[str, Observation] | None = None
    ) -> ManagerSnapshot:
        """Takes a snapshot of a pytorch-pfn-extras manager (or anything alike).

        ``observations``, when given, is the already converted
        ``manager.observation``; the snapshot keeps (a view of) that dict.
        """
        if observations is None:
            observations = plain_observations(_read(manager, "observation", {}))
        try:
            # The usual pytorch-pfn-extras manager: read its properties directly
            # (and skip the NamedTuple's Python-level __new__: all fields given).
            return _tuple_new(
                cls,
                (
                    int(manager.epoch),
                    int(manager.iteration),
                    float(manager.epoch_detail),
                    float(manager.elapsed_time),
                    manager.max_epochs,
                    manager.out,
                    MappingProxyType(observations),
                ),
            )
        except Exception:
            pass
        # Before training started, or another kind of manager: field by field.
        return cls(
            epoch=_number(_read(manager, "epoch", 0), int, 0),
            iteration=_number(_read(manager, "iteration", 0), int, 0),
            epoch_detail=_number(_read(manager, "epoch_detail", 0.0), float, 0.0),
            elapsed_time=_number(_read(manager, "elapsed_time", 0.0), float, 0.0),
            max_epochs=_read(manager, "max_epochs", None),
            out=_read(manager, "out", None),
            # Read-only view; the dict is the snapshot's own copy already.
            observation=MappingProxyType(observations),
        )


class EventSummary:
    """The one-line ``record.getMessage()`` text of a training event.

    Built lazily from the snapshot so the training thread pays nothing unless
    some handler prints the record.
    """

    __slots__ = ("_kind", "_observations", "_snapshot")

    def __init__(
        self,
        kind: EventKind,
        snapshot: ManagerSnapshot,
        observations: Mapping[str, Observation],
    ) -> None:
        self._kind = kind
        self._snapshot = snapshot
        self._observations = observations

    def __str__(self) -> str:
        snap = self._snapshot
        where = f"epoch {snap.epoch}, iteration {snap.iteration}"
        if self._kind == "start":
            return f"training started ({where})"
        if self._kind == "end":
            return f"training finished ({where}, {snap.elapsed_time:.1f}s)"
        if self._kind == "error":
            return f"training failed ({where}, {snap.elapsed_time:.1f}s)"
        if self._kind == "interrupted":
            return f"training interrupted ({where}, {snap.elapsed_time:.1f}s)"
        if self._kind == "stopped":
            return f"training stopped early ({where}, {snap.elapsed_time:.1f}s)"
        values = " ".join(f"{k}={v}" for k, v in self._observations.items())
        return f"{where}: {values}" if values else where

    def __repr__(self) -> str:
        return repr(str(self))


def event_extra(
    *,
    kind: EventKind,
    run_id: str,
    snapshot: ManagerSnapshot,
    context: Any,
    filenames: Sequence[str] = (),
    template: Any = None,
    source: str | None = None,
    run: RunFacts | None = None,
    text: str | None = None,
    text_markers: int = 0,
    site: Any = None,
    into: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Builds the ``extra=`` mapping of one training event record.

    With ``into`` (a new record's ``__dict__``), the attributes are set
    there directly and ``into`` is returned: the training thread makes no
    second mapping per event.

    Example:
        >>> extra = event_extra(kind="start", run_id="r1",
        ...                     snapshot=ManagerSnapshot(), context=None)
        >>> extra["ppe_event"], extra["epoch"], extra["filenames"]
        ('start', 0, [])
    """
    extra: dict[str, Any] = {} if into is None else into
    extra["ppe_event"] = kind
    extra["run_id"] = run_id
    extra["epoch"] = snapshot.epoch
    extra["iteration"] = snapshot.iteration
    extra["elapsed_time"] = snapshot.elapsed_time
    extra["observations"] = dict(snapshot.observation)
    extra["context"] = context
    extra["filenames"] = list(filenames) if filenames else []
    extra[_TEMPLATE] = template
    extra[_MANAGER] = snapshot
    extra[_SOURCE] = source
    extra[SITE_ATTR] = site
    if text is not None:
        extra[_TEXT] = text
        if text_markers:
            extra[_TEXT_MARKERS] = text_markers
    if run is not None:
        # Only runs that are resumed, interrupted or distributed carry these:
        # the common record stays as small as the contract.
        extra.update({k: v for k, v in run._asdict().items() if v is not None})
    return extra


class RunFacts(NamedTuple):
    """What a record says about the run beyond the position in it.

    Attributes are ``None`` when they do not apply; only the set ones become
    record attributes (``resumed``, ``reason``, ``rank``, ``world_size``,
    ``host``).

    Example:
        >>> RunFacts(rank=1, world_size=2, host="node7").where()
        'rank 1 of 2 on node7'
    """

    #: ``True`` on the start event of a run resumed from a snapshot.
    resumed: bool | None = None
    #: What ended the run, on interrupted and stopped events
    #: ("SIGTERM received", "the process exited with no error seen", ...).
    reason: str | None = None
    #: The emitting process's rank, in distributed runs (``world_size`` > 1).
    rank: int | None = None
    #: The number of processes of a distributed run.
    world_size: int | None = None
    #: The emitting process's host name, in distributed runs.
    host: str | None = None

    @property
    def distributed(self) -> bool:
        """Whether the event comes from a job of several processes."""
        return (self.world_size or 1) > 1

    def where(self) -> str:
        """``rank R of N on HOST`` for a distributed run, else ``""``."""
        if not self.distributed:
            return ""
        text = f"rank {self.rank} of {self.world_size}"
        return f"{text} on {self.host}" if self.host else text


_RUN_FIELDS: Final = RunFacts._fields
_RUN_KEYS: Final = frozenset(_RUN_FIELDS)

#: The record contract's attributes of a training event (``exc_info``
#: aside), in the order ``JsonFormatter`` writes them; the :class:`RunFacts`
#: fields last, set only when they apply.
EVENT_FIELDS: Final[tuple[str, ...]] = (
    "ppe_event",
    "run_id",
    "epoch",
    "iteration",
    "elapsed_time",
    "observations",
    "filenames",
    "context",
    # Alerts' own fields (a dict; see ALERT_ATTR).
    ALERT_ATTR,
    *_RUN_FIELDS,
)


class TrainingEvent(NamedTuple):
    """A training event read back from a record (see :func:`event_of`)."""

    kind: EventKind
    run_id: str
    epoch: int
    iteration: int
    elapsed_time: float
    observations: Mapping[str, Observation]
    context: Any
    filenames: Sequence[str]
    manager: ManagerSnapshot
    template: Any = None
    has_template: bool = False
    source: str | None = None
    error: BaseException | None = None
    run: RunFacts | None = None
    #: The extension's template, rendered at the event with the live manager.
    text: str | None = None
    #: ``[unprintable: ...]`` markers in ``text``.
    text_markers: int = 0


def event_of(record: logging.LogRecord) -> TrainingEvent | None:
    """Reads the training event carried by ``record``; ``None`` for other records.

    Records written by hand with only the documented attributes (for example
    replayed from a JSON file) are accepted: what is missing is defaulted.

    Example:
        >>> import logging
        >>> rec = logging.makeLogRecord({"ppe_event": "trigger", "epoch": 3})
        >>> event_of(rec).epoch
        3
    """
    d = record.__dict__
    kind = d.get("ppe_event")
    if kind not in EVENT_KINDS:
        return None
    observations: Mapping[str, Observation] = d.get("observations") or {}
    snapshot = d.get(_MANAGER)
    if type(snapshot) is not ManagerSnapshot:
        snapshot = ManagerSnapshot(
            epoch=_number(d.get("epoch", 0), int, 0),
            iteration=_number(d.get("iteration", 0), int, 0),
            elapsed_time=_number(d.get("elapsed_time", 0.0), float, 0.0),
            observation=MappingProxyType(dict(observations)),
        )
    exc_info = record.exc_info
    # Only resumed, interrupted and distributed runs carry these (5 lookups).
    run = None if _RUN_KEYS.isdisjoint(d) else RunFacts._make(map(d.get, _RUN_FIELDS))
    run_id = d.get("run_id", "")
    text = d.get(_TEXT)
    # Every field is given: tuple.__new__ skips the NamedTuple's Python __new__.
    return _tuple_new(
        TrainingEvent,
        (
            kind,
            run_id if type(run_id) is str else text_of(run_id, "run_id"),
            snapshot.epoch,
            snapshot.iteration,
            snapshot.elapsed_time,
            observations,
            d.get("context"),
            d.get("filenames") or [],
            snapshot,
            d.get(_TEMPLATE),
            _TEMPLATE in d,
            d.get(_SOURCE),
            exc_info[1] if exc_info else None,
            run,
            text,
            0 if text is None else _number(d.get(_TEXT_MARKERS, 0), int, 0),
        ),
    )
