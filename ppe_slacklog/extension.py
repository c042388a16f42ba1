"""``Slack``: the pytorch-pfn-extras extension, a drop-in for ppe's own.

The extension turns the training lifecycle into log records (see
:mod:`ppe_slacklog.events`); it never talks to Slack. When no
:class:`~ppe_slacklog.SlackHandler` is configured for its logger it attaches
one of its own, so that with only ``SLACK_BOT_TOKEN`` set it behaves like
``pytorch_pfn_extras.training.extensions.Slack``.
"""

from __future__ import annotations

import contextlib
import functools
import itertools
import logging
import threading
import time
import types
import uuid
import weakref
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from typing import Any, Final

from pytorch_pfn_extras.training import extension
from pytorch_pfn_extras.training._trigger_util import get_trigger

from . import _callsite, _interrupts, _watchdog
from ._distributed import Job, current_job
from ._progress import progress_probe
from ._safetext import describe, discard_shown_since, shown, warn_unprintable
from ._secret import Secret
from ._watchdog import RunWatch, StallAfter, check_stall_after
from .alerts import Alert
from .cardstate import (
    DEFAULT_CARD_INTERVAL,
    DEFAULT_CHART_INTERVAL,
    CardOptions,
    Progress,
)
from .events import (
    ALERT_ATTR,
    DEFAULT_LOGGER,
    PROGRESS_ATTR,
    EventKind,
    EventSummary,
    ManagerSnapshot,
    RunFacts,
    event_extra,
    plain_observations,
    unprintable_values,
)
from .formatter import SlackFormatter
from .handler import DEFAULT_BROADCAST, SlackHandler, drain_all
from .slackapi import resolve_token
from .templates import (
    Template,
    alert_default,
    default_end_msg,
    default_error_msg,
    default_msg,
    default_start_msg,
    default_text,
    render_template,
    renders_at_event,
)
from .webhook import SecretUrl, SlackWebhookHandler, resolve_webhook_url

__all__ = ["Slack", "SlackWebhook"]

FilenamesSpec = Sequence[str] | Callable[[Any, Any], Sequence[str]] | None

_LEVELS: Final[dict[EventKind, int]] = {
    "start": logging.INFO,
    "trigger": logging.INFO,
    "end": logging.INFO,
    "error": logging.ERROR,
    "interrupted": logging.WARNING,
    # The loop ended early and the process exited normally: news, not an alarm.
    "stopped": logging.INFO,
    "stall": logging.WARNING,
    "resume_progress": logging.WARNING,
    "nonfinite": logging.WARNING,
    "alert": logging.WARNING,
}
# Longest wait of state_dict() for a thread whose first message is queued.
_STATE_WAIT: Final = 2.0
# Longest wait of another rank (on its sender thread) for rank 0's thread:
# well within a flush_timeout.
_RANK_WAIT: Final = 5.0
# Numbers the extensions of a process in creation order: every rank of a
# job creates the same ones, so the n-th is the same run everywhere.
_ordinals = itertools.count()
_TOKEN_ENV: Final = "SLACK_BOT_TOKEN"


# The reason of a ``stopped`` event.
_NORMAL_EXIT: Final = "the process exited with no error seen"


def _iteration_of(manager: Any) -> int | None:
    """``manager.iteration``, or ``None`` for a manager that has none."""
    try:
        return int(manager.iteration)
    except Exception:
        return None


def _weakly_referable(value: Any) -> bool:
    try:
        weakref.ref(value)
    except TypeError:
        return False
    return True


def _failure_of(ref: weakref.ref[Slack]) -> Callable[[], str | None]:
    """How another rank of the job failed, for rank 0's card (never waits)."""

    def failure() -> str | None:
        extension = ref()
        if extension is None:
            return None
        return extension._job.failure(extension.run_id)

    return failure


def _training_begun(ref: weakref.ref[Slack]) -> bool:
    """Whether the extension's run trains (its start is not held back)."""
    extension = ref()
    return extension is not None and extension._held is None


def _training_started(manager: Any) -> bool:
    """Whether ppe's manager has begun its first iteration.

    ppe's property getters (``manager.iteration``, ``models``, ``state_dict``,
    ``load_state_dict``) start the extensions before any training; only
    ``run_iteration`` sets ``_start_time`` (a manager of another kind: yes).
    """
    return getattr(manager, "_start_time", 0) is not None


# Swaps of a held start: released by the training thread or by the watcher
# that notices the training has begun, exactly once.
_hold_lock = threading.Lock()
# How often the watcher looks whether a held start's training has begun.
_START_POLL: Final = 0.2


def _loggers_on_the_way(logger: logging.Logger) -> list[logging.Logger]:
    """``logger`` and the ancestors its records propagate to."""
    found: list[logging.Logger] = []
    current: logging.Logger | None = logger
    while current is not None:
        found.append(current)
        current = current.parent if current.propagate else None
    return found


def _handlers_reaching(logger: logging.Logger) -> list[logging.Handler]:
    """Handlers that a record logged on ``logger`` would pass through."""
    found: list[logging.Handler] = []
    current: logging.Logger | None = logger
    while current is not None:
        found.extend(current.handlers)
        current = current.parent if current.propagate else None
    return found


class _FromSource(logging.Filter):
    """Lets through only the events of one extension (for its own handler)."""

    def __init__(self, source: str) -> None:
        super().__init__()
        self.source = source

    def filter(self, record: logging.LogRecord) -> bool:
        return getattr(record, "ppe_source", None) == self.source


def _warn(message: str) -> None:
    """Warns, but never into the training: ``-W error`` must not stop it.

    The warning points at the user's line: in a hook, the ``Slack(...)``
    call (see :func:`_never_raises`); elsewhere the caller's own line.
    """
    with contextlib.suppress(Exception):
        _callsite.warn(message, UserWarning)


# Sources (extensions) and texts already told: each reason is said once.
_told: set[tuple[str, str]] = set()


def _warn_once(source: str, message: str) -> None:
    """Warns like :func:`_warn`, once per extension and text."""
    if (source, message) not in _told:
        _told.add((source, message))
        _warn(message)


def _never_raises(hook: Callable[..., None]) -> Callable[..., None]:
    """Makes an extension hook total: reporting must never stop training.

    Each step inside already keeps its own trouble to itself; this is the
    last line, for what nobody foresaw.
    """

    @functools.wraps(hook)
    def total(self: Slack, *args: Any) -> None:
        # ppe calls hooks from deep inside the manager: what they warn about
        # points at the user's Slack(...) call instead. (blame/unblame, not
        # the context manager: this runs at every trigger.)
        saved = _callsite.blame(getattr(self, "_site", None))
        try:
            hook(self, *args)
        except Exception as exc:
            _warn(
                f"ppe_slacklog.Slack.{hook.__name__} failed ({describe(exc)}); "
                "training goes on."
            )
        finally:
            _callsite.unblame(saved)

    return total


def _is_own(handler: logging.Handler) -> bool:
    """Whether ``handler`` is one that an extension attached for itself."""
    return any(isinstance(f, _FromSource) for f in handler.filters)


class Slack(extension.Extension):
    """An extension that reports training progress to Slack through logging.

    A drop-in for ``pytorch_pfn_extras.training.extensions.Slack``: same
    arguments, same messages. It posts when:

    * ``start_msg``: the training has started,
    * ``msg``: the extension is triggered (by default at the end of each epoch),
    * ``end_msg``: the training has finished,
    * ``error_msg``: an exception was raised during the training.

    Each can be a format string, a callable returning a string, or ``None``
    to not post on that event. A format string can use ``manager``,
    ``default`` (the default text), ``context``, ``error`` (for
    ``error_msg``) and every reported value by name (``{val/loss}``). A
    callable takes ``(manager, context)``, or ``(manager, exception,
    context)`` for ``error_msg``. As in ppe, ``manager`` is the live
    manager and values are those of the event: a template that reads only
    the observations, ``default`` and ``manager.epoch``, ``iteration``,
    ``epoch_detail``, ``elapsed_time``, ``max_epochs``, ``out`` or
    ``observation`` is rendered later, off the training thread, from the
    record's snapshot (the same text, at no cost to the loop); any other
    template (a callable, ``{context...}``,
    ``{manager.optimizers[main].param_groups[0][lr]}``, the error message)
    is rendered at the event, on the training thread. String ``filenames``
    follow the same rules and are always rendered at the event.
    A value a template asks for but that is missing is shown as
    ``[missing: name]`` and reported once as a warning; training goes on.

    Each event becomes a record on the logger ``logger``. When logging was
    not configured for that logger, the extension attaches a
    :class:`~ppe_slacklog.SlackHandler` of its own (from ``channel``,
    ``token``, ``base_url`` and ``thread``). When a SlackHandler is reachable
    from it, that one posts instead (with its own channel and templates);
    when the logger itself has handlers (or does not propagate), the
    configuration decides, the extension posts nothing by itself and says
    so once (unless the logger has handlers and does not propagate: "these
    handlers only"). Handlers on its ancestors (``ppe_slacklog``, the root
    logger of ``logging.basicConfig``) only observe the events.
    Either way each event is posted once, from a background thread: the
    training loop never waits on Slack, except at the end and on an error,
    when pending messages are flushed (bounded by the handler's
    ``flush_timeout``).

    Args:
        channel: Channel name or ID for the extension's own handler.
        msg: Message when triggered.
        start_msg: Message at the start of the training.
        end_msg: Message at the end of the training.
        error_msg: Message when an exception is raised in the training.
        thread: Post later messages in the thread of the first one.
        filenames: Files to upload when triggered: a list of templates (the
            rules of ``msg``) or a callable ``(manager, context)`` returning
            a list of paths.
        upload_trigger: When to upload ``filenames``; every call if ``None``.
        context: Any object the templates need, passed as ``context``.
        token: Slack bot token; defaults to ``SLACK_BOT_TOKEN``. Never shown
            or pickled: an extension saved with ``pickle`` or ``torch.save``
            reads ``SLACK_BOT_TOKEN`` again when loaded.
        logger: Logger (or its name) that receives the events.
        base_url: Slack-compatible API URL; defaults to ``SLACK_API_URL``,
            else Slack's own.
        interrupted_msg: Message when the run stops without finishing or
            failing (``KeyboardInterrupt``, ``SIGTERM``, an uncaught
            exception, ``sys.exit`` with an error status); it also sees
            ``reason``. ``None`` to not post it.
        stopped_msg: Message when the loop ended before its stop trigger and
            the process exited with no error seen (not an interruption, not
            a finish): ``{default}`` says where it stopped; it also sees
            ``reason``. ``None`` to not post it.
        broadcast: Events whose thread reply the extension's own handler
            also shows in the channel (by default errors and interruptions;
            add ``"end"`` to see every finish there).
        ranks: In a ``torch.distributed`` job, the ranks whose trigger
            messages are posted (``None``: every rank). Start, end and
            interrupted messages come from rank 0, errors from any rank.
        card: Make each run's first message a live card (Block Kit, edited
            in place with ``chat.update``): its state, progress with ETA,
            throughput and a table of the latest and best metrics, and a
            chart when matplotlib is installed. ``False``: plain messages
            only, exactly as pytorch-pfn-extras posts them.
        card_metrics: The metrics the card shows: a list of keys, or a
            mapping of keys to ``"min"`` / ``"max"`` (which way is better;
            by default judged from the name: accuracy up, loss down).
            ``None``: every scalar of the last trigger, at most 8.
        card_interval: Seconds between two edits of a card (at least), and
            between two looks at the manager's progress (at most). The
            final state is sent at once.
        chart_interval: Seconds between two charts attached to the thread
            during the run (the newest replaces the previous one); one is
            always attached at the end. ``None``: only at the end. A chart
            needs matplotlib and a metric with 5 values or more.
        stall_after: Seconds without a new iteration after which the run is
            reported stalled (one ``stall`` alert, then one
            ``resume_progress`` line when it advances again; the card shows
            ⏸️ meanwhile). ``"auto"``: max(10 min, 20 x the median iteration
            time so far); ``None``: not watched.
        alerts: Threshold rules (:class:`~ppe_slacklog.Alert`) on the
            reported metrics.
        nonfinite: Alert when a reported scalar becomes NaN or ±inf (once
            per key, and once when it is finite again).
        mention: Prepended, as written, to alerts, errors and interruptions
            of the extension's own handler (``"<@U012ABC>"``, ``"<!here>"``,
            ``"<!subteam^S0123>"``); never to routine messages.

    Alerts are WARNING records of kinds ``stall``, ``resume_progress``,
    ``nonfinite`` and ``alert`` (see ``docs/record-contract.md``), logged by
    a watchdog thread of the process (daemon: it never keeps the process
    alive), so they reach every handler of the logger, and are checked off
    the training thread: a loop blocked in native code is still seen to
    stall. In a ``torch.distributed`` job only rank 0 watches (its own
    progress and triggers).

    A run resumed from a snapshot (``manager.load_state_dict(torch.load(p))``
    before the loop, or ``snapshot(autoload=True)``) continues in the thread
    it started, and its start message says where it resumed. The same
    extension object used for a second training starts a new thread.

    The thread's first message is the run's live card (``card=False`` turns
    it off): edited in place while the run goes, at most every
    ``card_interval`` seconds (also between triggers: a run with hour-long
    epochs still shows it advances), and in its final state before the
    extension's last flush returns.

    Raises:
        RuntimeError: No token was given while the extension would have to
            post by itself.
        ValueError: A bad ``card_interval``, ``chart_interval``,
            ``card_metrics``, ``stall_after``, ``alerts`` (a list of rules)
            or rule in it, ``nonfinite`` (not a bool) or ``mention``.

    Example:
        >>> manager.extend(  # doctest: +SKIP
        ...     ppe_slacklog.Slack(
        ...         channel="experiment-progress",
        ...         msg="Epoch #{manager.epoch}: loss = {val/loss}",
        ...         end_msg="{default} \\n <@username> Check out the result!",
        ...         filenames=["result/statistics.png"],
        ...         upload_trigger=(max_epoch, "epoch"),
        ...     ),
        ...     trigger=(1, "epoch"),
        ... )
    """

    trigger: Any = (1, "epoch")
    # Initialise after ppe's snapshot extension (PRIORITY_SNAPSHOT): with
    # ``autoload=True`` it loads the snapshot in its own ``initialize``, and
    # the start message must know that the run was resumed. Finalising last
    # also lets other extensions write their final plots before the end
    # message uploads them.
    priority = extension.PRIORITY_SNAPSHOT - 1

    # One training run's lifecycle (initialize ... finalize, load_state_dict).
    # The start event held back while ppe's manager.load_state_dict runs:
    # (manager, run facts); see initialize.
    _held: tuple[Any, RunFacts, ManagerSnapshot, tuple[str, int] | None] | None = None
    # load_state_dict ran since the last initialize: the next one resumes.
    _loaded = False
    # Trainings this object started, so that every rank of a job agrees on
    # the run id of a reused extension's second training.
    _runs = 0
    # manager.iteration when the run was initialized (None: not a number).
    _start_iteration: int | None = None

    # ppe exposes its default texts as plain functions on the class.
    default_msg = default_msg
    default_start_msg = default_start_msg
    default_end_msg = default_end_msg
    default_error_msg = default_error_msg

    def __init__(
        self,
        channel: str,
        msg: Template = None,
        *,
        start_msg: Template = "{default}",
        end_msg: Template = "{default}",
        error_msg: Template = "{default}",
        thread: bool = True,
        filenames: FilenamesSpec = None,
        upload_trigger: Any = None,
        context: Any = None,
        token: str | None = None,
        logger: str | logging.Logger = DEFAULT_LOGGER,
        base_url: str | None = None,
        interrupted_msg: Template = "{default}",
        stopped_msg: Template = "{default}",
        broadcast: Iterable[str] = DEFAULT_BROADCAST,
        ranks: Collection[int] | None = (0,),
        card: bool = True,
        card_metrics: Sequence[str] | Mapping[str, str] | None = None,
        card_interval: float = DEFAULT_CARD_INTERVAL,
        chart_interval: float | None = DEFAULT_CHART_INTERVAL,
        stall_after: StallAfter = "auto",
        alerts: Iterable[Alert | Mapping[str, Any]] = (),
        nonfinite: bool = True,
        mention: str | None = None,
    ) -> None:
        super().__init__()
        #: The user's line that made this extension: its warnings point there.
        self._site = _callsite.capture()
        self._channel = channel
        self._templates: dict[EventKind, Template] = {
            "trigger": msg,
            "start": start_msg,
            "end": end_msg,
            "error": error_msg,
            "interrupted": interrupted_msg,
            "stopped": stopped_msg,
        }
        self._broadcast = tuple(broadcast)
        # Checked now: a bad interval is the user's error at this line.
        CardOptions.of(card_metrics, card_interval, chart_interval)
        self._card = (card, card_metrics, card_interval, chart_interval)
        # What the watchdog looks for, and the run it watches (initialize).
        if isinstance(alerts, (str, Mapping)):
            raise ValueError(
                "alerts= takes a list of rules (ppe_slacklog.Alert, or mappings), "
                f"got {alerts!r}"
            )
        if not isinstance(nonfinite, bool):
            raise ValueError(f"nonfinite must be True or False, got {nonfinite!r}")
        self._watching = (
            check_stall_after(stall_after),
            tuple(Alert.of(rule) for rule in alerts),
            nonfinite,
        )
        self._alert_watch: RunWatch | None = None
        if mention is not None and not isinstance(mention, str):
            raise ValueError(f"mention must be a string, got {mention!r}")
        self._mention = mention or None
        # Where the live manager is, for the card between events (initialize).
        self._probe: Callable[[], Progress | None] | None = None
        self._ranks = None if ranks is None else frozenset(ranks)
        self._ordinal = next(_ordinals)
        self._job = Job()
        self._run_facts: RunFacts | None = None
        # Threads per channel saved in a snapshot, and whether one was loaded.
        self._saved_threads: dict[str, str] = {}
        self._resumed = False
        self._posts_triggers = True
        self._initialized = False
        self._unsubscribe: list[Callable[[], None]] = []
        self._thread = thread
        self._filenames = filenames
        self._upload_trigger = (
            None if upload_trigger is None else get_trigger(upload_trigger)
        )
        self._context = context
        self._logger = (
            logger if isinstance(logger, logging.Logger) else logging.getLogger(logger)
        )
        self._base_url = base_url
        resolved = resolve_token(token)
        # Never shown, never pickled: see __getstate__.
        self._token = None if resolved is None else Secret(resolved, env=_TOKEN_ENV)
        self._source = uuid.uuid4().hex
        self._own_handler: SlackHandler | None = None
        #: Identifies the run in every record; kept across snapshot resumes.
        self.run_id = uuid.uuid4().hex[:12]
        if not self._can_post() and not self._routing_configured():
            raise RuntimeError(self._no_credentials())

    def _can_post(self) -> bool:
        """Whether the extension has what its own handler needs to post."""
        return self._token is not None

    def _no_credentials(self) -> str:
        # ppe's own wording first: code matching ppe's error keeps working.
        return (
            "A bot `token` is needed for communicating with Slack: "
            f"ppe_slacklog.Slack has none to post to {self._channel}. Set the "
            "SLACK_BOT_TOKEN environment variable or pass token=... "
            "(or configure a ppe_slacklog.SlackHandler on the "
            f"'{self._logger.name}' logger)."
        )

    def _new_handler(self) -> SlackHandler:
        """The extension's own handler, when logging routes its events nowhere."""
        return SlackHandler(
            self._channel,
            None if self._token is None else self._token.reveal(),
            base_url=self._base_url,
            thread=self._thread,
            broadcast=self._broadcast,
            card=self._card[0],
            card_metrics=self._card[1],
            card_interval=self._card[2],
            chart_interval=self._card[3],
            mention=self._mention,
        )

    def __repr__(self) -> str:
        return f"<ppe_slacklog.Slack {self._channel} run={self.run_id}>"

    # -- pickling -----------------------------------------------------------

    def __getstate__(self) -> dict[str, Any]:
        """What a pickle (``torch.save``, a checkpoint) of the extension holds.

        Its settings and its run (id, saved threads), never its secret: the
        token (or webhook URL) is read again from ``SLACK_BOT_TOKEN`` (or
        ``SLACK_WEBHOOK_URL``) when the copy is loaded. What only lives in
        this process (its own handler, the job's store, thread listeners,
        the live card's probe of the manager) is left out; the copy sets it
        up again when its training starts.
        """
        state = self.__dict__.copy()
        state.update(
            _own_handler=None,
            _unsubscribe=[],
            _initialized=False,
            _held=None,
            _job=Job(),
            _probe=None,
            _alert_watch=None,
            _needed_secret=self._can_post(),
        )
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        needed = state.pop("_needed_secret", False)
        self.__dict__.update(state)
        # A copy is another extension: its own handler must not pass the
        # original's events (each handler lets through its source only).
        self._source = uuid.uuid4().hex
        if needed and not self._can_post():
            _warn(
                f"{self!r} was loaded without its secret (pickles never hold "
                f"one) and {self._secret_env()} is not set in this process: "
                "set it before the training starts, or configure a "
                "ppe_slacklog.SlackHandler, else events are logged but not "
                "posted.",
            )

    def _secret_env(self) -> str:
        return _TOKEN_ENV

    # -- handler wiring -------------------------------------------------

    def _configured_handlers(self) -> list[SlackHandler]:
        """SlackHandlers reachable from the logger, other extensions' own excluded."""
        return [
            h
            for h in _handlers_reaching(self._logger)
            if isinstance(h, SlackHandler) and not _is_own(h)
        ]

    def _routing_configured(self) -> bool:
        """Whether logging was set up to decide where training events go.

        True when a SlackHandler is reachable (that one posts), or when the
        training logger itself has handlers (NullHandlers aside) or does not
        propagate: that configuration decides, with or without Slack.
        Handlers on its ancestors (``ppe_slacklog``, the root logger) only
        observe the events: the drop-in still posts to Slack by itself.
        """
        if self._configured_handlers():
            return True
        logger = self._logger
        return not logger.propagate or bool(self._routed_to())

    def _routed_to(self) -> list[logging.Handler]:
        """The training logger's own handlers that decide where events go."""
        return [
            h
            for h in self._logger.handlers
            if not _is_own(h) and not isinstance(h, logging.NullHandler)
        ]

    def _why_not_posting(self) -> str | None:
        """Why the configured routing keeps events from Slack, and the way out.

        ``None`` when a SlackHandler posts them, or when the configuration
        says plainly that Slack is not wanted: the logger does not propagate
        and has handlers of its own (recipe d, console only).
        """
        if self._configured_handlers():
            return None
        name, handlers = self._logger.name, self._routed_to()
        if handlers and not self._logger.propagate:
            return None
        if handlers:
            where = (
                f"the logger '{name}' has handlers of its own "
                f"({', '.join(map(repr, handlers))}) and no ppe_slacklog."
                "SlackHandler is reachable from it, so its events go to those "
                "handlers only"
            )
            fix = (
                f"To post to Slack as well, add a ppe_slacklog.SlackHandler to "
                f"'{name}', or move those handlers to an ancestor logger (such "
                f"as '{name.rpartition('.')[0] or 'root'}'), where they observe "
                "the events while the extension posts; to keep them as the only "
                f"destination without this warning, set propagate=False on "
                f"'{name}'."
            )
        else:
            where = (
                f"the logger '{name}' does not propagate and has no handlers, "
                "so its events go nowhere"
            )
            fix = (
                f"Set propagate=True on '{name}' to let the extension post, or "
                "add a ppe_slacklog.SlackHandler to it."
            )
        return f"ppe_slacklog.Slack posts nothing to Slack: {where}. {fix}"

    def _attach_own_handler(self) -> bool:
        """Attaches the drop-in's own SlackHandler unless logging routes the events.

        Returns:
            False when it warned that the events do not reach Slack.
        """
        if self._own_handler is not None:
            return True
        if self._routing_configured():
            why = self._why_not_posting()
            if why is not None:
                _warn_once(self._source, why)
            return why is None
        if not self._can_post():
            _warn(
                "ppe_slacklog.Slack: logging is no longer configured for "
                f"'{self._logger.name}' and no token was given: events are "
                "logged but not posted to Slack.",
            )
            return False
        handler = self._new_handler()
        handler.addFilter(_FromSource(self._source))
        self._logger.addHandler(handler)
        # ppe posts every event, and prints none: the logger's level is left
        # as it is (a basicConfig console at WARNING stays quiet), and the
        # events below it go to this handler only (see _only_own_handler).
        self._own_handler = handler
        return True

    def _warn_if_level_drops_events(self) -> None:
        """Says exactly which setting drops start, trigger and end events."""
        logger = self._logger
        self._warn_if_slack_handlers_skip_events()
        if logger.isEnabledFor(logging.INFO):
            return
        if self._only_own_handler(logging.INFO) is not None:
            # The drop-in's own handler takes them all; say so to a handler
            # set to INFO on the way, which would otherwise wait for them.
            self._warn_if_observers_miss_events()
            return
        name = logger.name
        disabled = logging.root.manager.disable
        if logger.disabled:
            cause = (
                "logging.config disabled it (dictConfig and fileConfig disable "
                "the loggers that exist and that they do not name, unless told "
                "otherwise)"
            )
            fix = (
                "give 'disable_existing_loggers': False to dictConfig "
                "(disable_existing_loggers=False to fileConfig), or name "
                f"'{name}' under 'loggers'"
            )
        elif disabled >= logging.INFO:
            cause = f"logging.disable({logging.getLevelName(disabled)}) is in effect"
            fix = "call logging.disable(logging.NOTSET)"
        else:
            source: logging.Logger | None = logger
            while source is not None and source.level == logging.NOTSET:
                source = source.parent
            origin = "root" if source is None else source.name
            level = logging.getLevelName(logger.getEffectiveLevel())
            cause = f"its level is {level} (set on the logger '{origin}')"
            fix = (
                f"call logging.getLogger('{name}').setLevel(logging.INFO), or "
                f"give '{name}' 'level': 'INFO' under 'loggers' in your "
                "dictConfig"
            )
        dropped = [kind for kind, lv in _LEVELS.items() if not logger.isEnabledFor(lv)]
        _warn(
            f"ppe_slacklog.Slack: the logger '{name}' is not enabled for INFO: "
            f"{cause}, so its {', '.join(dropped)} events are dropped before "
            f"any handler sees them. To report them, {fix}.",
        )

    def _warn_if_observers_miss_events(self) -> None:
        """Names handlers set to INFO that the logger's level keeps events from."""
        waiting = [
            (owner, handler)
            for owner in _loggers_on_the_way(self._logger)
            for handler in owner.handlers
            if handler is not self._own_handler
            and logging.NOTSET < handler.level <= logging.INFO
        ]
        if not waiting:
            return
        owner, handler = waiting[0]
        level = logging.getLevelName(self._logger.getEffectiveLevel())
        _warn_once(
            self._source,
            f"ppe_slacklog.Slack: {handler!r} on the logger '{owner.name or 'root'}' "
            f"is set to {logging.getLevelName(handler.level)}, but the level of "
            f"'{self._logger.name}' is {level}, so it does not get the start, "
            "trigger and end events (Slack does). To see them there too, call "
            f"logging.getLogger('{owner.name}').setLevel(logging.INFO).",
        )

    def _warn_if_slack_handlers_skip_events(self) -> None:
        """Says so when the SlackHandlers that take the events skip some by level."""
        if self._own_handler is not None:
            return
        handlers = self._configured_handlers()
        if not handlers or any(h.level <= logging.INFO for h in handlers):
            return
        names = ", ".join(
            f"{h!r} (level {logging.getLevelName(h.level)})" for h in handlers
        )
        _warn_once(
            self._source,
            f"ppe_slacklog.Slack: the events go to {names}, whose level drops "
            "the start, trigger and end events, and the extension does not post "
            "by itself while a SlackHandler takes its events. To see them in "
            "Slack, set that handler's level to INFO (or NOTSET).",
        )

    def _detach_own_handler(self) -> None:
        handler, self._own_handler = self._own_handler, None
        if handler is not None:
            # A snapshot taken after the end still names the run's thread.
            ts = handler.thread_ts(self.run_id)
            if ts is not None:
                self._saved_threads[handler.channel] = ts
            self._logger.removeHandler(handler)
            with contextlib.suppress(Exception):  # never into training
                handler.close()

    def _slack_handlers(self) -> list[SlackHandler]:
        """The SlackHandlers that post this extension's events."""
        own = [self._own_handler] if self._own_handler is not None else []
        return own + self._configured_handlers()

    def _flush(self) -> None:
        # One deadline for all: two channels with Slack down cost one bound.
        drain_all(_handlers_reaching(self._logger))

    # -- events -----------------------------------------------------------

    def _emit(
        self,
        kind: EventKind,
        manager: Any,
        *,
        filenames: Sequence[str] = (),
        exc: BaseException | None = None,
        snapshot: ManagerSnapshot | None = None,
        run: RunFacts | None = None,
        rendered: tuple[str, int] | None = None,
    ) -> None:
        logger = self._logger
        only: SlackHandler | None = None
        if not logger.isEnabledFor(_LEVELS[kind]):
            only = self._only_own_handler(_LEVELS[kind])
            if only is None:
                return
        try:
            if snapshot is None:
                snapshot = self._snapshot(manager)
            template = self._templates[kind]
            run = run or self._run_facts
            text, markers = (
                rendered
                if rendered is not None
                else self._render_now(kind, template, manager, snapshot, exc, run)
                if renders_at_event(template, kind)
                else (None, 0)
            )
            if text is None and not filenames and exc is None:
                handler = only or self._sole_handler()
                if handler is not None and self._renders_later(handler):
                    # Nobody but our own handler would see the record: it is
                    # made on the sender, when the text is (see _sole_handler).
                    handler._submit_later(
                        kind,
                        _LEVELS[kind],
                        self.run_id,
                        functools.partial(
                            self._make_record,
                            kind,
                            self.run_id,
                            snapshot,
                            (),
                            None,
                            run,
                            None,
                            0,
                            time.time(),
                        ),
                        snapshot,
                        run,
                        self._probe if kind == "start" else None,
                    )
                    return
            record = self._make_record(
                kind, self.run_id, snapshot, filenames, exc, run, text, markers
            )
            if only is not None:
                only.handle(record)
            else:
                logger.handle(record)
        except Exception as error:  # reporting must never stop training
            _warn(
                f"ppe_slacklog.Slack could not log the {kind} event: {describe(error)}",
            )

    def _make_record(
        self,
        kind: EventKind,
        run_id: str,
        snapshot: ManagerSnapshot,
        filenames: Sequence[str],
        exc: BaseException | None,
        run: RunFacts | None,
        text: str | None,
        markers: int,
        created: float | None = None,
    ) -> logging.LogRecord:
        """The record of one event (see :mod:`ppe_slacklog.events`).

        ``created`` is the time of the event for a record made later.
        """
        logger = self._logger
        exc_info = (type(exc), exc, exc.__traceback__) if exc is not None else None
        # makeRecord + handle is what Logger.log does, minus the stack walk
        # that finds the caller: the caller is always this method.
        record = logger.makeRecord(
            logger.name,
            _LEVELS[kind],
            __file__,
            0,
            EventSummary(kind, snapshot, snapshot.observation),
            (),
            exc_info,
            "_emit",
            None,
        )
        if created is not None:
            record.created = created
            record.msecs = (created - int(created)) * 1000.0
        # Our names never clash with LogRecord's own: skip makeRecord's
        # check, and set them on the record directly.
        event_extra(
            kind=kind,
            run_id=run_id,
            snapshot=snapshot,
            context=self._context,
            filenames=filenames,
            template=self._templates[kind],
            source=self._source,
            run=run,
            text=text,
            text_markers=markers,
            site=self._site,
            into=record.__dict__,
        )
        if kind == "start" and self._probe is not None:
            record.__dict__[PROGRESS_ATTR] = self._probe
        return record

    def _only_own_handler(self, level: int) -> SlackHandler | None:
        """The own handler, for an event the logger's level would drop.

        The drop-in posts every event, as ppe does, without changing the
        logging configuration: below the logger's level, events go to its
        own handler only. ``logging.disable`` and a logger that
        ``logging.config`` disabled still drop them (and ``initialize``
        says so).
        """
        handler = self._own_handler
        if (
            handler is None
            or logging.root.manager.disable >= level
            or handler not in self._logger.handlers  # taken away since
        ):
            return None
        if self._logger.disabled:
            # dictConfig/fileConfig disable the loggers they do not name,
            # by default: ppe would go on posting, and so does the drop-in.
            _warn_once(
                self._source,
                f"ppe_slacklog.Slack: logging.config disabled the logger "
                f"'{self._logger.name}' (disable_existing_loggers): the drop-in "
                "keeps posting its events to Slack, but other handlers no longer "
                "see them. Give 'disable_existing_loggers': False to dictConfig "
                f"(or name '{self._logger.name}' under 'loggers') to keep them.",
            )
        return handler

    @staticmethod
    def _renders_later(handler: SlackHandler) -> bool:
        """Whether ``handler`` takes events whose record it makes itself."""
        return (
            handler.level <= logging.INFO
            and len(handler.filters) == 1
            and type(handler.formatter) is SlackFormatter
        )

    def _sole_handler(self) -> SlackHandler | None:
        """The extension's own handler, when no other code would see a record.

        Then making the record, and rendering its template, can wait for
        the sender: nothing changes in what anyone sees, and the training
        thread saves most of an event's cost. Any handler or filter on the
        way (a ``basicConfig`` console, pytest's capture, a ProcessorFilter,
        a formatter of the user's) makes every event a record at once again.
        """
        handler = self._own_handler
        logger = self._logger
        if (
            handler is None
            or logger.disabled
            or logger.filters
            or len(logger.handlers) != 1
            or logger.handlers[0] is not handler
        ):
            return None
        current = logger
        while current.propagate:
            parent = current.parent
            if parent is None:
                break
            if parent.handlers or parent.filters or parent.disabled:
                return None
            current = parent
        return handler

    def _render_now(
        self,
        kind: EventKind,
        template: Template,
        manager: Any,
        snapshot: ManagerSnapshot,
        exc: BaseException | None,
        run: RunFacts | None,
    ) -> tuple[str, int]:
        """Renders ``template`` as ppe does: at the event, with the live manager.

        The default text and the observations come from the snapshot, so
        they read the same as in a handler's later rendering.

        Returns:
            The text, and the ``[unprintable: ...]`` markers in it (the
            handler that sends it counts them in its stats).
        """
        assert template is not None
        mark = shown()
        text = render_template(
            template,
            event=kind,
            manager=manager,
            context=self._context,
            default=default_text(template, kind, snapshot, self._context, exc, run),
            observations=snapshot.observation,
            error=exc,
            reason=run.reason if run else None,
        )
        markers = shown() - mark
        # The handler counts them again when it sends the text.
        discard_shown_since(mark)
        return text, markers

    @staticmethod
    def _snapshot(manager: Any) -> ManagerSnapshot:
        try:
            observation = manager.observation
        except Exception:  # not a ppe manager, or one that is not ready
            observation = {}
        observations = plain_observations(observation)
        for marker in unprintable_values(observations):
            # Once per key: the value is a marker in every event from now on.
            warn_unprintable(marker.name, marker.error)
        return ManagerSnapshot.of(manager, observations)

    def _render_filenames(self, manager: Any, snapshot: ManagerSnapshot) -> list[str]:
        spec = self._filenames
        if spec is None:
            return []
        if callable(spec):
            try:
                return [str(name) for name in spec(manager, self._context)]
            except Exception as exc:
                _warn(
                    "ppe_slacklog.Slack: the filenames callable raised "
                    f"{describe(exc)}; no files are uploaded this time.",
                )
                return []
        return [
            render_template(
                name,
                event="filenames",
                # As in ppe: file names may read anything of the live manager.
                manager=manager,
                context=self._context,
                default="",
                observations=snapshot.observation,
                esc=str,
            )
            for name in spec
        ]

    @_never_raises
    def initialize(self, manager: Any) -> None:
        """Posts the start message (attaching the extension's own handler if needed).

        Also joins the run to the rest of a distributed job, continues a
        resumed run's thread, and starts watching for an interrupted exit.

        ppe's ``manager.load_state_dict`` initializes the extensions before
        it loads their states; an ``initialize`` that finds the manager past
        iteration 0 with no state loaded is that, and holds the start back
        for :meth:`load_state_dict`, which posts it as resumed. Any other
        event first posts a start still held. An extension initialized a
        second time (another manager) with no state loaded in between
        starts a new run, in a new thread.
        """
        if self._initialized and not self._loaded:
            self._new_run()
        resuming, self._loaded = self._loaded, False
        self._attach_own_handler()
        self._warn_if_level_drops_events()
        try:
            self._join_job()
        except Exception as exc:  # reporting must never stop training
            _warn(
                f"ppe_slacklog.Slack could not join the job's thread: {describe(exc)}"
            )
        self._initialized = True
        for handler in self._slack_handlers():
            # An interruption may be the first thing logged, at exit, when
            # Python 3.12 no longer starts threads.
            with contextlib.suppress(Exception):
                handler.start()
        self._posts_triggers = self._posts("trigger")
        self._start_iteration = _iteration_of(manager)
        job = self._job
        self._probe = progress_probe(
            manager,
            failure=(
                _failure_of(weakref.ref(self))
                if job.distributed and job.rank == 0 and job.store is not None
                else None
            ),
        )
        if self._job.rank == 0:
            self._start_watchdog()
            start = (self._run_facts or RunFacts())._replace(
                resumed=True if resuming else None
            )
            if not resuming and (
                self._start_iteration or not _training_started(manager)
            ):
                # Inside manager.load_state_dict, or started by a property
                # read before the loop (which may load a snapshot next): the
                # start waits for the state, or for the first iteration.
                snapshot = self._snapshot(manager)
                template = self._templates["start"]
                # What ppe would render now, is rendered now (a callable, the
                # live manager, context); the rest waits with the snapshot.
                rendered = (
                    self._render_now("start", template, manager, snapshot, None, start)
                    if renders_at_event(template, "start")
                    else None
                )
                self._held = (manager, start, snapshot, rendered)
                self._release_when_training_starts(manager)
            else:
                self._emit("start", manager, run=start)
            self._watch(manager)

    def _start_watchdog(self) -> None:
        """Watches this run for stalls, non-finite values and rules (fresh)."""
        _watchdog.unwatch(self._alert_watch)
        stall_after, rules, nonfinite = self._watching
        emit = weakref.WeakMethod(self._emit_alert)

        def emit_alert(
            kind: EventKind, fields: dict[str, Any], snapshot: ManagerSnapshot
        ) -> None:
            method = emit()
            if method is not None:
                method(kind, fields, snapshot)

        watch = RunWatch(
            emit_alert,
            self._probe,
            stall_after=stall_after,
            nonfinite=nonfinite,
            rules=rules,
            start_iteration=self._start_iteration,
            ready=functools.partial(_training_begun, weakref.ref(self)),
        )
        self._alert_watch = watch if watch.active else None
        _watchdog.watch(watch)

    def _stop_watchdog(self) -> None:
        """The run ends: its queued checks are done now, then it is not watched."""
        watch, self._alert_watch = self._alert_watch, None
        _watchdog.unwatch(watch)

    def _emit_alert(
        self, kind: EventKind, fields: dict[str, Any], snapshot: ManagerSnapshot
    ) -> None:
        """Logs one alert record (watchdog thread, or the run's end)."""
        logger = self._logger
        level = _LEVELS[kind]
        only: SlackHandler | None = None
        if not logger.isEnabledFor(level):
            only = self._only_own_handler(level)
            if only is None:
                return
        try:
            plain = alert_default(
                kind, fields, snapshot.epoch, snapshot.iteration, esc=str
            )
            record = logger.makeRecord(
                logger.name, level, __file__, 0, plain, (), None, "_emit_alert", None
            )
            event_extra(
                kind=kind,
                run_id=self.run_id,
                snapshot=snapshot,
                context=self._context,
                source=self._source,
                run=self._run_facts,
                site=self._site,
                into=record.__dict__,
            )
            record.__dict__[ALERT_ATTR] = fields
            if only is not None:
                only.handle(record)
            else:
                logger.handle(record)
        except Exception as error:  # reporting must never stop training
            _warn(
                f"ppe_slacklog.Slack could not log the {kind} alert: {describe(error)}"
            )

    def _new_run(self) -> None:
        """Makes this extension report a new training (a new thread)."""
        self._stop_watchdog()
        self._runs += 1
        self.run_id = uuid.uuid4().hex[:12]
        self._saved_threads = {}
        self._resumed = False
        self._held = None

    def _release_start(self, *, resumed: bool = False) -> None:
        """Posts a start that :meth:`initialize` held back (if any).

        The lock is held until the start is logged: an event on the
        training thread that finds the start being released by the watcher
        waits for it, so the start always comes first.
        """
        with _hold_lock:
            held = self._held
            if held is None:
                return
            try:
                manager, start, snapshot, rendered = held
                run = start._replace(resumed=True if resumed else None)
                if resumed:
                    # Where the loaded state is: rendered now, from it.
                    self._emit("start", manager, run=run)
                else:
                    # The manager as it was at initialize (before training).
                    self._emit(
                        "start", manager, run=run, snapshot=snapshot, rendered=rendered
                    )
            finally:
                self._held = None

    def _release_when_training_starts(self, manager: Any) -> None:
        """Posts a held start as soon as the manager's first iteration begins.

        ppe has no hook at the start of an iteration, and the first trigger
        may be an epoch away: a daemon thread looks every 0.2 s, until the
        start is released (or loaded as resumed) or the manager is gone.
        """
        ref = weakref.ref(manager) if _weakly_referable(manager) else None
        if ref is None:
            return  # released by the first event instead

        def watch() -> None:
            while self._held is not None:
                live = ref()
                if live is None:
                    return
                if _training_started(live):
                    self._release_start()
                    return
                del live
                time.sleep(_START_POLL)

        with contextlib.suppress(RuntimeError):  # no new threads at exit
            threading.Thread(
                target=watch, name="ppe_slacklog-start-watch", daemon=True
            ).start()

    def _watch(self, manager: Any) -> None:
        """Reports an exit before the end, while ``manager`` lives.

        The manager is held weakly: a run whose manager was dropped (a
        notebook cell stopped by Ctrl-C, a test that ran a few iterations)
        is no longer watched, and its model can be garbage-collected.
        """
        try:
            ref: Callable[[], Any] = weakref.ref(manager)
        except TypeError:  # not weakly referable: watched as long as we are
            ref = functools.partial(lambda m: m, manager)

        def emit(reason: str | None) -> None:
            live = ref()
            if live is not None:
                self._interrupted(live, reason)

        _interrupts.watch(self, emit, owner=manager)

    def _join_job(self) -> None:
        """Agrees on the run and its threads with the snapshot and other ranks."""
        job = self._job = current_job()
        if job.distributed:
            if not self._resumed:
                self.run_id = job.run_id(self._ordinal, self.run_id, self._runs)
            self._run_facts = RunFacts(
                rank=job.rank, world_size=job.world_size, host=job.host
            )
        self._connect_threads()

    def _connect_threads(self) -> None:
        """Hands each handler the run's thread: saved, or rank 0's, or its own."""
        job = self._job
        self._stop_sharing()
        for handler in self._slack_handlers():
            try:
                saved = self._saved_threads.get(handler.channel)
                if job.rank == 0:
                    if saved is not None:
                        handler.continue_thread(self.run_id, saved)
                        job.publish_thread(self.run_id, handler.channel, saved)
                    if job.distributed:
                        self._share_threads(handler)
                elif saved is not None:
                    handler.continue_thread(self.run_id, saved)
                else:
                    finder = job.thread_finder(
                        self.run_id, handler.channel, wait=_RANK_WAIT
                    )
                    handler.continue_thread(self.run_id, finder, keep_looking=True)
            except Exception as exc:  # one handler's trouble is not the others'
                _warn(
                    f"ppe_slacklog.Slack could not connect the run's thread in "
                    f"{handler.channel}: {describe(exc)}"
                )

    def _share_threads(self, handler: SlackHandler) -> None:
        run_id, job, channel = self.run_id, self._job, handler.channel

        def publish(key: str, ts: str) -> None:
            if key == run_id:
                job.publish_thread(run_id, channel, ts)

        self._unsubscribe.append(handler.on_thread_started(publish))

    def _stop_sharing(self) -> None:
        unsubscribe, self._unsubscribe = self._unsubscribe, []
        for remove in unsubscribe:
            remove()

    def _disconnect(self) -> None:
        _interrupts.unwatch(self)
        self._stop_sharing()

    def _posts(self, kind: EventKind) -> bool:
        """Whether this process reports ``kind`` events (rank rules)."""
        rank = self._job.rank
        if kind == "error":
            return True
        if kind == "trigger":
            return self._ranks is None or rank in self._ranks
        return rank == 0

    @_never_raises
    def __call__(self, manager: Any) -> None:
        """Posts the trigger message and, when due, uploads ``filenames``."""
        if self._held is not None:
            self._release_start()
        if not self._logger.isEnabledFor(logging.INFO) and (
            self._only_own_handler(logging.INFO) is None
        ):
            return  # nobody would see the event: no snapshot either
        if not self._posts_triggers:
            return
        # One snapshot serves the file names and the event (tensors are
        # converted once).
        snapshot = self._snapshot(manager)
        watch = self._alert_watch
        if watch is not None:
            watch.pending.append(snapshot)  # checked by the watchdog thread
        filenames = self._render_filenames(manager, snapshot)
        upload_trigger = self._upload_trigger
        if filenames and upload_trigger is not None and not upload_trigger(manager):
            filenames = []
        self._emit("trigger", manager, filenames=filenames, snapshot=snapshot)

    @_never_raises
    def finalize(self, manager: Any) -> None:
        """Posts the end message and waits (bounded) until Slack has it.

        A ``SIGTERM`` meanwhile (the job stopped just as it finished) waits
        for this flush, then the process exits with status 143. The run did
        finish: no interruption is reported.
        """
        with _interrupts.finishing():
            self._disconnect()
            self._loaded = False
            self._release_start()
            self._stop_watchdog()
            if self._posts("end"):
                self._emit("end", manager)
            self._flush()
            self._detach_own_handler()

    @_never_raises
    def on_error(
        self,
        manager: Any,
        exc: Exception,
        tb: types.TracebackType,
    ) -> None:
        """Posts the error message with its traceback and waits until sent.

        A ``SIGTERM`` meanwhile waits for this flush, then the process exits
        with status 143.
        """
        with _interrupts.finishing():
            self._disconnect()
            self._loaded = False
            self._release_start()
            self._stop_watchdog()
            self._emit("error", manager, exc=exc)
            job = self._job
            if job.distributed and job.rank != 0:
                # Rank 0 writes the job's card: it shows this failure too.
                job.report_failure(
                    self.run_id,
                    f"❌ {describe(exc)} (rank {job.rank} of {job.world_size}"
                    + (f" on {job.host})" if job.host else ")"),
                )
            self._flush()

    @_never_raises
    def _interrupted(self, manager: Any, reason: str | None) -> None:
        """At exit of a run that neither finished nor failed: says so.

        ``reason`` is ``None`` when the process exited normally (no signal,
        no uncaught exception, no ``sys.exit`` with an error status): a run
        that trained since it was initialized then says where it stopped
        (a ``stopped`` event, not an alarm); one that never trained (only
        ``manager.state_dict()`` was called) says nothing. A run whose own
        handler was taken away (closed and removed, e.g. by a test's
        fixture) with nothing else routing its events is not reported.

        The handlers are drained right after, by the exit hook of
        :mod:`ppe_slacklog.handler`, together with every other run's.
        """
        if reason is None and _iteration_of(manager) == self._start_iteration:
            return
        if self._held is not None and not _training_started(manager):
            return  # never trained (killed while loading, say): nothing to say
        own = self._own_handler
        if (
            own is not None
            and own not in self._logger.handlers
            and not self._routing_configured()
        ):
            return
        self._release_start()
        self._stop_watchdog()
        kind: EventKind = "interrupted" if reason is not None else "stopped"
        run = (self._run_facts or RunFacts())._replace(reason=reason or _NORMAL_EXIT)
        self._emit(kind, manager, run=run)

    def state_dict(self) -> dict[str, Any]:
        """The run id and its Slack thread per channel, for a resumed training.

        A thread whose first message is still on its way is waited for
        briefly, so a snapshot taken right after the start keeps it.
        """
        threads: dict[str, str] = dict(self._saved_threads)
        for handler in self._slack_handlers():
            with contextlib.suppress(Exception):  # a snapshot must not fail here
                wait = _STATE_WAIT if handler.thread else 0.0
                ts = handler.thread_ts(self.run_id, wait=wait)
                if ts is not None:
                    threads[handler.channel] = ts
        return {"run_id": self.run_id, "threads": threads}

    def load_state_dict(self, to_load: dict[str, Any]) -> None:
        """Restores the run id and threads saved by :meth:`state_dict`.

        Load it before the training starts (``manager.load_state_dict``
        before the loop, or ppe's ``snapshot(autoload=True)``), so that the
        start message already says where the run resumed, in the saved
        thread. Loaded later, the run's next messages still go to the saved
        thread.
        """
        run_id = to_load.get("run_id")
        if isinstance(run_id, str) and run_id:
            self.run_id = run_id
        threads = to_load.get("threads")
        if isinstance(threads, dict):
            self._saved_threads = {
                str(k): str(v) for k, v in threads.items() if isinstance(v, str) and v
            }
        self._resumed = True
        if self._held is not None:
            # manager.load_state_dict: this run's start, held by initialize.
            self._connect_threads()
            self._release_start(resumed=True)
            return
        # Before the training (autoload): the next initialize resumes this
        # run. During it: the run goes on in the loaded thread, until its
        # finalize or on_error.
        self._loaded = True
        if self._initialized:
            self._connect_threads()


class SlackWebhook(Slack):
    """Reports training progress through a Slack Incoming Webhook.

    A drop-in for ``pytorch_pfn_extras.training.extensions.SlackWebhook``:
    same arguments, same messages, delivered like :class:`Slack` does (off
    the training thread, in order, paced, retried). An Incoming Webhook
    posts top-level messages only: no threads, no broadcast, no file
    uploads (``filenames`` are ignored with a warning).

    Args:
        url: Incoming Webhook URL; defaults to ``SLACK_WEBHOOK_URL``. Never
            shown in reprs or warnings, never pickled: a pickled extension
            reads ``SLACK_WEBHOOK_URL`` again when loaded.
        msg: Message when triggered.
        start_msg: Message at the start of the training.
        end_msg: Message at the end of the training.
        error_msg: Message when an exception is raised in the training.
        context: Any object the templates need, passed as ``context``.
        filenames: Not supported by webhooks; a warning says so.
        upload_trigger: Ignored, like ``filenames``.
        logger: Logger (or its name) that receives the events.
        interrupted_msg: Message when the run stops without finishing or
            failing; see :class:`Slack`.
        stopped_msg: Message when the loop ended before its stop trigger;
            see :class:`Slack`.
        ranks: Ranks whose trigger messages are posted; see :class:`Slack`.
        stall_after: Stall watchdog; see :class:`Slack`.
        alerts: Threshold rules; see :class:`Slack`.
        nonfinite: Non-finite value alerts; see :class:`Slack`.
        mention: Prepended to alerts, errors and interruptions; see
            :class:`Slack`.

    Raises:
        RuntimeError: No URL was given while the extension would have to
            post by itself.
        ValueError: ``url`` is not an http(s) URL (shown without its secret).

    Example:
        >>> manager.extend(  # doctest: +SKIP
        ...     ppe_slacklog.SlackWebhook(
        ...         url="https://hooks.slack.com/services/T000/B000/XXXX",
        ...         msg="Epoch #{manager.epoch}: loss = {val/loss}",
        ...     ),
        ...     trigger=(1, "epoch"),
        ... )
    """

    def __init__(
        self,
        url: str | None = None,
        msg: Template = None,
        *,
        start_msg: Template = "{default}",
        end_msg: Template = "{default}",
        error_msg: Template = "{default}",
        context: Any = None,
        filenames: FilenamesSpec = None,
        upload_trigger: Any = None,
        logger: str | logging.Logger = DEFAULT_LOGGER,
        interrupted_msg: Template = "{default}",
        stopped_msg: Template = "{default}",
        ranks: Collection[int] | None = (0,),
        stall_after: StallAfter = "auto",
        alerts: Iterable[Alert | Mapping[str, Any]] = (),
        nonfinite: bool = True,
        mention: str | None = None,
    ) -> None:
        self._url: SecretUrl | None = resolve_webhook_url(url)
        if filenames is not None:
            _warn(
                "ppe_slacklog.SlackWebhook cannot upload files (Incoming Webhooks "
                "post text only): filenames are ignored. Use ppe_slacklog.Slack "
                "with a bot token to upload them."
            )
        super().__init__(
            self._url.label() if self._url else "an Incoming Webhook",
            msg,
            start_msg=start_msg,
            end_msg=end_msg,
            error_msg=error_msg,
            thread=False,
            context=context,
            logger=logger,
            interrupted_msg=interrupted_msg,
            stopped_msg=stopped_msg,
            broadcast=(),
            ranks=ranks,
            stall_after=stall_after,
            alerts=alerts,
            nonfinite=nonfinite,
            mention=mention,
        )

    def __repr__(self) -> str:
        return f"<ppe_slacklog.SlackWebhook {self._channel} run={self.run_id}>"

    def _can_post(self) -> bool:
        return self._url is not None

    def _no_credentials(self) -> str:
        # In the words of ppe's Slack error (ppe's SlackWebhook has no check).
        return (
            "An Incoming Webhook `url` is needed for communicating with Slack: "
            "ppe_slacklog.SlackWebhook has none. Set the SLACK_WEBHOOK_URL "
            "environment variable or pass url=... (or configure a "
            "ppe_slacklog.SlackWebhookHandler on the "
            f"'{self._logger.name}' logger)."
        )

    def _new_handler(self) -> SlackHandler:
        return SlackWebhookHandler(self._url, mention=self._mention)

    def _secret_env(self) -> str:
        return "SLACK_WEBHOOK_URL"
