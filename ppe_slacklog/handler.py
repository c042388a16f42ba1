"""``SlackHandler``: a standard logging handler that delivers records to Slack.

``emit`` renders the record and queues it; a background sender posts it. The
handler never imports torch or pytorch-pfn-extras: any program can route its
logs (stdlib or structlog) to Slack through it.
"""

from __future__ import annotations

import atexit
import functools
import logging
import os
import sys
import time
import weakref
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Final, NoReturn, SupportsIndex

from slack_sdk import WebClient

from . import _callsite, _forkpipe, _safetext
from ._diagnostics import DIAGNOSTICS_LOGGER, Once, quiet
from ._safetext import describe
from .capping import cap_text, record_limit
from .cards import CardLink
from .cardstate import (
    DEFAULT_CARD_INTERVAL,
    DEFAULT_CHART_INTERVAL,
    CardOptions,
    Progress,
)
from .chunking import DEFAULT_MAX_CHARS, check_max_chars
from .delivery import (
    DeliveryApi,
    Outbox,
    drain_outboxes,
    holds_logging_lock,
    live_outboxes,
)
from .events import (
    ALERT_ATTR,
    EVENT_KINDS,
    PROGRESS_ATTR,
    SITE_ATTR,
    EventKind,
    ManagerSnapshot,
    RunFacts,
    TrainingEvent,
    event_of,
)
from .formatter import UNSET, SlackFormatter, _Unset, record_level
from .pacing import DEFAULT_BURST, DEFAULT_RATE
from .queueing import DEFAULT_MAX_BYTES, DEFAULT_MAX_RECORDS, Post
from .slackapi import FileData, SlackApi, resolve_token
from .stats import DeliveryStats
from .templates import Template, escape

__all__ = ["DEFAULT_BROADCAST", "MENTIONED_KINDS", "SlackHandler", "drain_all"]

# Loggers whose records describe delivery itself; sending them to Slack
# would make every post produce another post. (Records logged on a sender
# thread are ignored whatever their logger: see _diagnostics.quiet.)
_IGNORED_LOGGERS: Final = (DIAGNOSTICS_LOGGER, "slack_sdk", "urllib3")

_LABELS: Final = {kind: f"{kind} message" for kind in EVENT_KINDS}

#: Events whose thread reply is also shown in the channel by default.
DEFAULT_BROADCAST: Final = ("error", "interrupted", "stall", "nonfinite", "alert")

#: Events a handler's ``mention`` is prepended to (not their recovery lines).
MENTIONED_KINDS: Final = frozenset(
    ("error", "interrupted", "stall", "nonfinite", "alert")
)


def _recovery(record: logging.LogRecord) -> bool:
    """An alert record saying that its condition ended (not an alarm)."""
    fields = record.__dict__.get(ALERT_ATTR)
    return isinstance(fields, Mapping) and bool(fields.get("recovered"))


#: Seconds to wait for one Slack API answer, unless ``request_timeout`` says.
DEFAULT_REQUEST_TIMEOUT: Final = 15.0

# Slack's upper bound for one uploaded file.
_MAX_FILE_BYTES: Final = 1024**3


class SlackHandler(logging.Handler):
    """A logging handler that posts records to a Slack channel, in threads.

    Training events (from :class:`ppe_slacklog.Slack`) are rendered with the
    documented templates and posted in one Slack thread per run; any other
    record becomes a top-level message with a level marker, the logger name,
    the message and its traceback. ``emit`` only formats and queues: a
    background thread does the network I/O, in order.

    Args:
        channel: Channel name (``"experiment-progress"``) or ID.
        token: Bot token; defaults to the ``SLACK_BOT_TOKEN`` environment
            variable. Never shown in reprs, warnings or records.
        base_url: Slack-compatible API URL; defaults to ``SLACK_API_URL``,
            else Slack's own.
        client: A ready ``slack_sdk.WebClient`` to use instead of building one.
        msg: Template for trigger events, overriding the record's.
        start_msg: Template for start events, overriding the record's.
        end_msg: Template for end events, overriding the record's.
        error_msg: Template for error events, overriding the record's.
        interrupted_msg: Template for interrupted runs, overriding the record's.
        stopped_msg: Template for runs whose loop ended before its stop
            trigger (the process exited with no error seen), overriding the
            record's.
        thread: Post each run's events in one Slack thread.
        broadcast: Events (``"error"``, ``"interrupted"``, ``"end"``, ...)
            whose thread reply is also shown in the channel (Slack's
            ``reply_broadcast``), so that nobody has to open the thread to
            see that a run failed. By default errors, interruptions and the
            alerts (``stall``, ``nonfinite``, ``alert``; their recovery
            lines stay in the thread).
        level: The handler's level.
        flush_timeout: Longest wait, in seconds, of :meth:`flush` and
            :meth:`close` for the queue to drain.
        max_message_chars: Longer texts are split into several messages; at
            most 40,000, above which Slack truncates.
        max_record_chars: Longest text of one record (default: three
            messages' worth); the middle of a longer one is left out, with
            a line saying how much, so that one huge record cannot hold up
            the records after it.
        max_queue_records: Most records waiting for Slack; past it the
            oldest trigger and sub-WARNING records are dropped first.
        max_queue_bytes: Most (approximate) bytes waiting for Slack.
        rate_limit: Messages per second to the channel (Slack allows about
            one); ``None`` to not pace.
        burst: Messages that may go at once before ``rate_limit`` applies.
        request_timeout: Seconds to wait for one Slack API answer (default
            15). Only for the client the handler builds: a ``client`` keeps
            its own timeout (``WebClient(timeout=...)``), and giving both is
            a ``ValueError``.
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
        mention: Prepended, as written, to alerts (``stall``, ``nonfinite``,
            ``alert``), errors and interruptions, never to routine messages
            or recovery lines: ``"<@U012ABC>"``, ``"<!here>"``,
            ``"<!subteam^S0123>"``.

    Raises:
        ValueError: No token (argument or ``SLACK_BOT_TOKEN``) and no client;
            ``request_timeout`` together with ``client``;
            ``max_message_chars`` above 40,000; a bad ``card_interval``,
            ``chart_interval`` or ``card_metrics``; a ``mention`` that is
            not a string.

    Example:
        >>> import logging.config
        >>> logging.config.dictConfig({
        ...     "version": 1,
        ...     "disable_existing_loggers": False,
        ...     "handlers": {"slack": {
        ...         "()": "ppe_slacklog.SlackHandler",
        ...         "channel": "experiment-progress"}},
        ...     "loggers": {"ppe_slacklog.training": {
        ...         "handlers": ["slack"], "level": "INFO"}},
        ... })  # doctest: +SKIP
    """

    #: Delivery diagnostics never go back to Slack (no feedback loops); a
    #: diagnostic that only SlackHandlers would see goes to stderr instead.
    shows_diagnostics: bool = False

    def __init__(
        self,
        channel: str,
        token: str | None = None,
        *,
        base_url: str | None = None,
        client: WebClient | None = None,
        msg: Template | _Unset = UNSET,
        start_msg: Template | _Unset = UNSET,
        end_msg: Template | _Unset = UNSET,
        error_msg: Template | _Unset = UNSET,
        interrupted_msg: Template | _Unset = UNSET,
        stopped_msg: Template | _Unset = UNSET,
        thread: bool = True,
        broadcast: Iterable[str] = DEFAULT_BROADCAST,
        level: int | str = logging.NOTSET,
        flush_timeout: float = 10.0,
        max_message_chars: int = DEFAULT_MAX_CHARS,
        max_record_chars: int | None = None,
        max_queue_records: int = DEFAULT_MAX_RECORDS,
        max_queue_bytes: int = DEFAULT_MAX_BYTES,
        rate_limit: float | None = DEFAULT_RATE,
        burst: int = DEFAULT_BURST,
        request_timeout: float | None = None,
        card: bool = True,
        card_metrics: Sequence[str] | Mapping[str, str] | None = None,
        card_interval: float = DEFAULT_CARD_INTERVAL,
        chart_interval: float | None = DEFAULT_CHART_INTERVAL,
        mention: str | None = None,
    ) -> None:
        super().__init__(level)
        # The user's line that made this handler (its SlackHandler(...) or
        # dictConfig call, or the Slack(...) call of an extension's own
        # handler): warnings about its templates and deliveries point there
        # when no better line is on the stack.
        self._site = _callsite.current()
        if not isinstance(channel, str) or not channel.strip():
            raise ValueError(
                f"SlackHandler needs a channel name or ID, got {channel!r}"
            )
        check_max_chars(max_message_chars)
        if client is not None and request_timeout is not None:
            # Silently ignoring it would leave the user's timeout unapplied.
            raise ValueError(
                f"SlackHandler for channel {channel}: request_timeout= applies "
                "to the client the handler builds, and a client= keeps its own "
                f"timeout ({client.timeout} s); set it there instead: "
                "WebClient(timeout=...)"
            )
        timeout = (
            DEFAULT_REQUEST_TIMEOUT if request_timeout is None else request_timeout
        )
        api = self._make_api(channel, token, base_url, client, timeout)
        self._can_upload = api.can_upload
        self.channel = channel
        self.thread = thread
        self.broadcast = frozenset(broadcast)
        if mention is not None and not isinstance(mention, str):
            raise ValueError(f"mention must be a string, got {mention!r}")
        #: Prepended, as written, to alerts, errors and interruptions.
        self.mention = mention or None
        unknown = self.broadcast - set(EVENT_KINDS)
        if unknown:
            raise ValueError(
                f"broadcast names unknown event kind(s) {sorted(unknown)}; "
                f"use some of {list(EVENT_KINDS)}"
            )
        self.max_record_chars = record_limit(max_record_chars, max_message_chars)
        self.setFormatter(
            SlackFormatter(
                msg=msg,
                start_msg=start_msg,
                end_msg=end_msg,
                error_msg=error_msg,
                interrupted_msg=interrupted_msg,
                stopped_msg=stopped_msg,
            )
        )
        self._outbox = Outbox(
            api,
            channel,
            thread=thread,
            max_chars=max_message_chars,
            max_queue_records=max_queue_records,
            max_queue_bytes=max_queue_bytes,
            rate=rate_limit,
            burst=burst,
            flush_timeout=float(flush_timeout),
            site=self._site,
        )
        self._once = Once(self._site)
        card_options = CardOptions.of(card_metrics, card_interval, chart_interval)
        #: The live cards of the runs this handler posts (``None``: no cards).
        self._cards: CardLink | None = None
        if card and thread and isinstance(api, SlackApi):
            # Incoming webhooks cannot edit a message: they post no card.
            self._cards = CardLink(
                api, channel, self._outbox.route[0], card_options, self._once
            )
            self._outbox.cards = self._cards
            outbox = self._outbox
            self._cards.posts_pending = lambda: outbox.pending
        _live.add(self)
        # Half the queue's byte bound: one file must never crowd out the rest.
        self._max_file_bytes = max_queue_bytes // 2

    def _make_api(
        self,
        channel: str,
        token: str | None,
        base_url: str | None,
        client: WebClient | None,
        timeout: float,
    ) -> DeliveryApi:
        """The transport: the Web API here, an Incoming Webhook in a subclass."""
        if client is not None:
            return SlackApi(client)
        resolved = resolve_token(token)
        if resolved is None:
            raise ValueError(
                f"SlackHandler for channel {channel} needs a Slack bot token: "
                "set the SLACK_BOT_TOKEN environment variable or pass token=..."
            )
        return SlackApi.create(token=resolved, base_url=base_url, timeout=timeout)

    def __repr__(self) -> str:
        level = logging.getLevelName(self.level)
        return f"<{type(self).__name__} {self.channel} ({level})>"

    def __reduce_ex__(self, protocol: SupportsIndex) -> NoReturn:
        # A live sender cannot travel, and the token must not: say so plainly.
        raise TypeError(
            f"{type(self).__name__} for {self.channel} cannot be pickled: it owns "
            "a background sender, and its Slack secret is never written out. "
            "Create the handler in each process (logging.config does), or "
            "pickle the ppe_slacklog.Slack extension, which leaves it out."
        )

    @property
    def flush_timeout(self) -> float:
        """Longest wait, in seconds, of :meth:`flush` and :meth:`close`."""
        return self._outbox.flush_timeout

    @flush_timeout.setter
    def flush_timeout(self, seconds: float) -> None:
        self._outbox.flush_timeout = float(seconds)

    @property
    def stats(self) -> DeliveryStats:
        """A snapshot of what this handler did so far (see :class:`DeliveryStats`).

        Each read returns a new, frozen snapshot; a saved one never changes.

        Example:
            >>> before = handler.stats  # doctest: +SKIP
            >>> logging.getLogger("myproject").warning("disk full")  # doctest: +SKIP
            >>> handler.flush()  # doctest: +SKIP
            >>> handler.stats.records_sent - before.records_sent  # doctest: +SKIP
            1
        """
        return self._outbox.stats()

    @property
    def pending(self) -> int:
        """Messages accepted but not yet delivered or given up on."""
        return self._outbox.pending

    def handle(self, record: logging.LogRecord) -> bool:
        """Filters and emits ``record``.

        Unlike ``logging.Handler.handle`` it takes no handler lock: ``emit``
        only reads immutable state and queues under the outbox's own lock,
        so threads logging at once never wait for each other here.
        """
        result = self.filter(record)
        if result:
            if isinstance(result, logging.LogRecord):  # Python >= 3.12 filters
                record = result
            self.emit(record)
        return bool(result)

    def emit(self, record: logging.LogRecord) -> None:
        """Renders ``record`` and queues it for the sender; never blocks on Slack."""
        try:
            if quiet() or str(record.name).startswith(_IGNORED_LOGGERS):
                return
            post = self.make_post(record)
            if post is not None:
                self._outbox.submit(post)
        except Exception:
            self.handleError(record)

    def make_post(self, record: logging.LogRecord) -> Post | None:
        """The :class:`Post` for ``record``; ``None`` when its event is disabled.

        A training event whose template reads only what the record holds
        (see :func:`~ppe_slacklog.templates.renders_at_event`) is rendered
        by the sender, when the post leaves the queue: the text is the same,
        and the training thread does not wait for it.

        Warnings while rendering point at the user's line (see
        :mod:`ppe_slacklog._callsite`): for a training event the extension's
        ``Slack(...)`` call, or this handler's own when its template is used;
        for any other record the logging call; this handler's when no user
        code is on the stack (rendering on the sender thread).
        """
        event = event_of(record)
        formatter = self.formatter
        if event is not None and self._cards is not None and event.run_id:
            self._feed_card(event, record)
        if (
            event is not None
            and not event.filenames
            and type(formatter) is SlackFormatter
            and formatter.defers(event)
        ):
            # The common training event: nothing is rendered or read now.
            return self._deferred_post(
                event.kind,
                record_level(record),
                event.run_id,
                functools.partial(self._render_later, record, event, formatter),
            )
        site = self._site_of(record, event, formatter)
        saved = _callsite.blame(site, self._site)
        try:
            return self._make_post(record, event, formatter, site)
        finally:
            _callsite.unblame(saved)

    def _submit_later(
        self,
        kind: EventKind,
        level: int,
        run_id: str,
        make_record: Callable[[], logging.LogRecord],
        snapshot: ManagerSnapshot | None = None,
        run: RunFacts | None = None,
        probe: Callable[[], Progress | None] | None = None,
    ) -> None:
        """Queues a training event whose record is made by the sender.

        For an extension's own handler when nothing else would see the record
        (see ``Slack._sole_handler``): ``make_record`` builds it, from the
        snapshot of the event, when the post leaves the queue. ``snapshot``,
        ``run`` and ``probe`` feed the run's live card now.
        """
        cards = self._cards
        if cards is not None and snapshot is not None and run_id:
            note = run.reason if run is not None and kind != "start" else None
            cards.feed(kind, run_id, snapshot, run, note=note, probe=probe)
        self._outbox.submit(
            self._deferred_post(
                kind, level, run_id, functools.partial(self._render_made, make_record)
            )
        )

    def _deferred_post(
        self, kind: EventKind, level: int, run_id: str, render: Callable[[], str]
    ) -> Post:
        """A training event's post whose text ``render`` gives on the sender."""
        # Positional: the per-event path, where keyword passing shows.
        return Post(
            "",
            run_id or None,
            (),
            kind,
            level,
            _LABELS.get(kind, "message"),
            1,
            kind in self.broadcast,
            0.0,
            render,
        )

    def _feed_card(self, event: TrainingEvent, record: logging.LogRecord) -> None:
        """Gives the event to the run's live card (training thread: cheap)."""
        assert self._cards is not None
        note = None
        if event.kind == "error" and event.error is not None:
            note = "❌ " + escape(_cut(describe(event.error), _NOTE_MAX))
        elif event.run is not None and event.run.reason and event.kind != "start":
            note = escape(_cut(event.run.reason, _NOTE_MAX))
        if note is not None and event.run is not None and event.run.distributed:
            note += f" ({escape(event.run.where())})"
        probe = record.__dict__.get(PROGRESS_ATTR) if event.kind == "start" else None
        self._cards.feed(
            event.kind, event.run_id, event.manager, event.run, note=note, probe=probe
        )

    @property
    def card_updates(self) -> tuple[int, int]:
        """``chat.update`` calls of this handler's cards: (done, answered 429).

        Example:
            >>> handler.card_updates  # doctest: +SKIP
            (12, 0)
        """
        if self._cards is None:
            return (0, 0)
        return (self._cards.updates, self._cards.rate_limited)

    def _render_made(self, make_record: Callable[[], logging.LogRecord]) -> str:
        record = make_record()
        event = event_of(record)
        if event is None:  # not a training event after all: as emit would
            return self._finish(record, None, self.formatter, [], None)
        return self._render_later(record, event, self.formatter)

    def _site_of(
        self,
        record: logging.LogRecord,
        event: TrainingEvent | None,
        formatter: logging.Formatter | None,
    ) -> _callsite.CallSite | None:
        """The user's line that warnings about rendering ``record`` point at."""
        if (
            event is not None
            and isinstance(formatter, SlackFormatter)
            and formatter.template_for(event) is not event.template
        ):
            return self._site  # this handler's own template
        site: _callsite.CallSite | None = record.__dict__.get(SITE_ATTR)
        return site

    def _render_later(
        self,
        record: logging.LogRecord,
        event: TrainingEvent,
        formatter: logging.Formatter | None,
    ) -> str:
        """The text of a post left to the sender (see :meth:`make_post`)."""
        site = self._site_of(record, event, formatter)
        return self._finish(record, event, formatter, [], site)

    def _make_post(
        self,
        record: logging.LogRecord,
        event: TrainingEvent | None,
        formatter: logging.Formatter | None,
        site: _callsite.CallSite | None,
    ) -> Post | None:
        files: tuple[FileData, ...] = ()
        problems: list[str] = []
        if event is not None and event.filenames:
            # Files go up even when the event's text is disabled, as in ppe.
            files, problems = self._read_files(event)
        if event is None:
            text = self._finish(record, None, formatter, problems, None)
            if not text or text.isspace():
                return None
            return Post(text=text, level=record_level(record), label="log record")
        if isinstance(formatter, SlackFormatter) and formatter.defers(event):
            text = ""
            render: Callable[[], str] | None = functools.partial(
                self._finish, record, event, formatter, problems, site
            )
        else:
            text = self._finish(record, event, formatter, problems, None)
            render = None
            if (not text or text.isspace()) and not files:
                return None
        return Post(
            text=text,
            thread_key=event.run_id or None,
            files=files,
            kind=event.kind,
            level=record_level(record),
            label=_LABELS.get(event.kind, "message"),
            broadcast=event.kind in self.broadcast and not _recovery(record),
            render=render,
        )

    def _finish(
        self,
        record: logging.LogRecord,
        event: TrainingEvent | None,
        formatter: logging.Formatter | None,
        problems: list[str],
        site: _callsite.CallSite | None,
    ) -> str:
        """Renders ``record``'s text, capped; ``""`` when its event is disabled.

        Runs in ``emit``, or on the sender for a rendering left to it (a
        SlackFormatter's, which never raises); there, ``site`` is the line
        its warnings point at.
        """
        saved = None if site is None else _callsite.blame(site, self._site)
        try:
            shown = _safetext.shown()  # markers rendered below count in stats
            if isinstance(formatter, SlackFormatter):
                if event is None:
                    text: str | None = formatter.render_plain(record)
                else:
                    text = formatter.render(record, event)
            else:
                text = self.format(record)  # never left to the sender: may raise
            if problems:
                text = "\n".join([text or "", *problems]).strip("\n")
            if (
                self.mention
                and text
                and event is not None
                and event.kind in MENTIONED_KINDS
                and not _recovery(record)
            ):
                # The user's configuration, sent as written (not escaped).
                text = f"{self.mention} {text}"
            _safetext.count_shown_since(shown, self._outbox.counters)
        finally:
            if saved is not None:
                _callsite.unblame(saved)
        # Capped once per record, before sending: the queue's byte bound and
        # the sender's time then go to many records, not to one.
        return cap_text(text or "", self.max_record_chars)

    def _read_files(
        self, event: TrainingEvent
    ) -> tuple[tuple[FileData, ...], list[str]]:
        # Read now, not when the sender gets to it: PlotReport rewrites its
        # plot every epoch, and the event is about the file as it is now.
        files: list[FileData] = []
        problems: list[str] = []
        if not self._can_upload:
            names = ", ".join(
                f"`{escape(os.path.basename(n))}`" for n in event.filenames
            )
            self._once.warn(
                ("cannot-upload",),
                f"ppe_slacklog: {self.channel} cannot upload files (Incoming "
                "Webhooks post text only); the file names are listed in the "
                "message instead. Use a bot token (ppe_slacklog.Slack / "
                "SlackHandler) to upload files.",
            )
            return (), [f"📎 Not attached (webhooks cannot upload): {names}"]
        for name in event.filenames:
            try:
                size = os.path.getsize(name)
                if size > _MAX_FILE_BYTES:
                    raise OSError(f"{size} bytes is over Slack's 1 GB limit")
                if size > self._max_file_bytes:
                    raise OSError(
                        f"{size} bytes is more than this handler queues for one "
                        f"file ({self._max_file_bytes}; raise max_queue_bytes)"
                    )
                with open(name, "rb") as fh:
                    files.append(FileData(os.path.basename(name), fh.read()))
            except OSError as exc:
                reason = exc.strerror or str(exc)
                problems.append(
                    f"⚠️ Could not attach `{escape(name)}`: {escape(reason)}"
                )
                self._once.warn(
                    ("file", name, reason),
                    f"ppe_slacklog: could not attach {name!r} to the {event.kind} "
                    f"message for Slack channel {self.channel}: {reason}. The "
                    "message is sent without it.",
                )
        return tuple(files), problems

    # -- threads of runs --------------------------------------------------------

    def thread_ts(self, run_id: str, *, wait: float = 0.0) -> str | None:
        """The ``ts`` of the Slack thread of run ``run_id``, once it was posted.

        Args:
            run_id: The run (a record's ``run_id``).
            wait: Seconds to wait for it while messages are still pending.

        Example:
            >>> handler.thread_ts(extension.run_id)  # doctest: +SKIP
            '1700000000.000100'
        """
        if wait > 0:
            return self._outbox.wait_thread_parent(run_id, wait)
        return self._outbox.thread_parent(run_id)

    def continue_thread(
        self,
        run_id: str,
        parent: str | Callable[[], str | None],
        *,
        keep_looking: bool = False,
    ) -> None:
        """Posts run ``run_id``'s messages in an existing thread.

        Args:
            run_id: The run.
            parent: The thread's ``ts`` (say, saved before a restart), or a
                function returning it (``None``: start a new thread). The
                sender thread calls it before the run's first post, so it
                may wait (bounded) without holding up the caller.
            keep_looking: When the function returns ``None``, post to the
                channel's top level and ask it again before the next post
                (another process's thread that is not there yet).
        """
        self._outbox.adopt_thread(run_id, parent, keep_looking=keep_looking)

    def start(self) -> None:
        """Starts the background sender now instead of at the first record."""
        self._outbox.start()

    def on_thread_started(
        self, listener: Callable[[str, str], None]
    ) -> Callable[[], None]:
        """Calls ``listener(run_id, ts)`` on the sender thread for each new thread.

        Returns:
            A function that removes the listener again.
        """
        return self._outbox.on_thread_started(listener)

    def flush(self) -> None:
        """Waits until queued messages are delivered, at most ``flush_timeout``.

        Called by ``logging.shutdown()``, it drains every SlackHandler at
        once against one deadline, so that shutting down logging costs one
        ``flush_timeout`` however many channels wait for a Slack that is
        down; the other handlers' flush and close then do not wait again.
        Called while ``logging.config`` replaces handlers, it does not wait.
        """
        if holds_logging_lock() or "_outbox" not in self.__dict__:
            # Replaced by logging.config (close() retires it), or a handler
            # whose construction failed, still on logging's shutdown list.
            return
        if _called_by_logging_shutdown():
            drain_outboxes(_outboxes_with_work(), at_exit=True)
        else:
            self.drain()

    def drain(self, timeout: float | None = None) -> bool:
        """Like :meth:`flush`, with a timeout of choice.

        Returns:
            ``True`` when nothing is left to send.
        """
        return self._outbox.flush(self.flush_timeout if timeout is None else timeout)

    def close(self) -> None:
        """Delivers what it can within ``flush_timeout``, then stops the sender.

        A handler that ``logging.config`` replaces (``dictConfig`` or
        ``basicConfig(force=True)`` run again) is closed at once instead:
        it delivers its backlog in the background, before any handler that
        takes over its channel posts, and within the exit bound.
        """
        try:
            if "_outbox" in self.__dict__:  # not if construction failed
                self._outbox.close(self.flush_timeout)
        finally:
            super().close()


_live: weakref.WeakSet[SlackHandler] = weakref.WeakSet()

# The longest error or reason a card shows (the thread has the whole text).
_NOTE_MAX: Final = 300


def _cut(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _called_by_logging_shutdown() -> bool:
    # logging.shutdown() flushes and closes handlers one after the other;
    # it calls flush() directly (through our flush, hence two frames up).
    try:
        frame = sys._getframe(2)
    except ValueError:  # called with no Python frame above (atexit, a C callback)
        return False
    return frame.f_code is logging.shutdown.__code__


def _outboxes_with_work() -> list[Outbox]:
    outboxes = live_outboxes()
    if outboxes:
        # Records that forked children wrote to their pipe but the parent has
        # not read yet are work too: without this wait, a child that logs and
        # exits just before the parent does would lose them (no outbox would
        # have anything pending yet).
        _forkpipe.settle(time.monotonic() + max(o.flush_timeout for o in outboxes))
    return [o for o in outboxes if o.has_work]


def drain_all(handlers: Iterable[logging.Handler], *, at_exit: bool = False) -> bool:
    """Flushes ``handlers``, the SlackHandlers against one shared deadline.

    The deadline is the longest ``flush_timeout`` among the SlackHandlers
    that still have messages to send: two channels with Slack down cost one
    bound, not two. With ``at_exit``, it is the interpreter's last flush
    (see ``Outbox.drain_at_exit``). Never raises.

    Returns:
        ``True`` when every SlackHandler delivered everything.
    """
    outboxes: list[Outbox] = []
    others: list[logging.Handler] = []
    for handler in handlers:
        if isinstance(handler, SlackHandler):
            outboxes.append(handler._outbox)
        else:
            others.append(handler)
    delivered = drain_outboxes(outboxes, at_exit=at_exit)
    for other in others:
        try:
            other.flush()
        except Exception:  # best effort: a broken handler must not stop the rest
            delivered = False
    return delivered


def _drain_at_exit() -> None:
    # Registered after logging's own exit hook, so it runs before
    # logging.shutdown: every outbox (those of handlers that a reconfiguration
    # replaced included) gets one shared deadline here, and shutdown's
    # flush() and close() then do not wait a second time.
    drain_outboxes(_outboxes_with_work(), at_exit=True)
    for outbox in live_outboxes():
        if outbox.closed and outbox.pending:
            # Replaced handlers are closed by nobody else: say what is lost.
            outbox.close(0.0)


atexit.register(_drain_at_exit)
