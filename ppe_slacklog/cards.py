"""The card thread: keeps every live card of the process up to date in Slack.

A card is the first message of a run's thread (the outbox posts it with the
card's blocks, see :class:`CardLink`); from then on one daemon thread per
process edits it with ``chat.update``:

* **coalesced**: only the newest state is sent, at most one edit per
  ``card_interval`` per card; the final state (finished, failed,
  interrupted, stopped) goes at once;
* **within Slack's limits**: ``chat.update`` is Tier 3 (about 50 a minute,
  shared by every run of the app in the workspace), so every edit takes a
  token of one bucket per Slack API; a 429 empties it for ``Retry-After``,
  a 5xx or a lost connection is tried again later (the newest state then);
* **replaced once** when Slack says the card cannot be edited any more
  (deleted, not editable, edit window closed): a new card is posted in the
  thread, with a warning; a second time, the card stops;
* **flushed**: :func:`flush_cards` waits (bounded) until the cards of some
  channels show their newest state, so that a run's final state is in Slack
  before ``flush()``, ``close()`` or the interpreter's exit return.

It never keeps the process alive, and nothing here raises into a caller.
"""

from __future__ import annotations

import contextlib
import os
import threading
import time
import weakref
from collections.abc import Callable, Iterable
from typing import Any, Final

from ._daemon import start_daemon
from ._diagnostics import Once, mark_sender_thread
from .card import FINAL_STATES, card_blocks, card_text, identity_of
from .cardstate import CardOptions, LiveCard, Progress
from .events import EventKind, ManagerSnapshot, RunFacts
from .pacing import TokenBucket, bucket_for
from .runs import channel_key, run_threads
from .slackapi import FileData, Posted, SlackApi, SlackDeliveryError

__all__ = ["BAD_BLOCKS", "MIN_CHART_POINTS", "CardLink", "flush_cards"]

# chat.update is Tier 3: "50+ per minute" per app and workspace. Paced a
# little under it, as posts are (requests arrive with jitter).
_TIER3_RATE: Final = 50 / 60 * 0.9
_TIER3_BURST: Final = 2
# Errors after which the card message cannot be edited any more.
_UNEDITABLE: Final = frozenset(
    {"message_not_found", "cant_update_message", "edit_window_closed"}
)
#: Errors that say the blocks themselves are wrong.
BAD_BLOCKS: Final = frozenset({"invalid_blocks", "msg_blocks_too_long"})
#: A chart is drawn once some metric has this many points.
MIN_CHART_POINTS: Final = 5
_BACKOFF_FIRST: Final = 1.0
_BACKOFF_MAX: Final = 30.0
# The longest the card thread sleeps without looking at its cards.
_TICK: Final = 1.0
_FAR: Final = float("inf")


def _charts_available() -> bool:
    try:
        from .chart import available
    except ImportError:
        return False
    return bool(available())


class _Slot:
    """A card as the card thread delivers it: where it is, and when next."""

    def __init__(self, card: LiveCard, link: CardLink) -> None:
        self.card = card
        self.link = link
        self.ts: str | None = None
        self.channel_id: str | None = None
        #: The version being posted with the thread's first message.
        self.posting: int | None = None
        self.dead = False
        self.replaced = False
        self.last_edit = -_FAR
        self.retry_at = 0.0
        self.backoff = _BACKOFF_FIRST
        self.next_poll = 0.0
        self.urgent = False
        self.chart_at = time.monotonic() + (card.options.chart_interval or _FAR)
        self.chart_points = 0
        self.final_chart = False
        #: Slack refused a card showing the chart: charts go to the thread only.
        self.chart_outside = False
        #: The thread (its parent: the card) a resumed run continues in.
        self.continues: str | None = None
        #: Slack shows the run's final state (the chart may still come).
        self.final_shown = False
        #: Whether the view being posted as the thread's first message is final.
        self.posting_final = False
        #: The outbox posting the card as the thread's first message.
        self.posting_owner: object = None
        #: Slack's last answer to an edit that failed: what a late flush says.
        self.last_error: SlackDeliveryError | None = None

    @property
    def route(self) -> tuple[str, str]:
        return self.link.route

    def settled(self, posts_done: bool, charts: bool = True) -> bool:
        """Slack shows the card's newest state (or never will).

        For a run that ended, its final state; with ``charts``, also its
        final chart (the interpreter's exit waits for it, a flush does not).
        """
        card = self.card
        if self.dead:
            return True
        if self.ts is None:
            # Its first message is not posted: once the posts are done, it
            # never will be (refused, or dropped), and there is nothing to edit.
            return posts_done
        if card.waiting:
            return False
        if not card.final:
            return card.shown == card.version
        if not self.final_shown:
            return False
        # Not knowing yet whether charts can be drawn counts as wanting one:
        # the card thread finds out (flushing must not import matplotlib).
        wants = self.card.options.chart and self.link._can_chart is not False
        return not (
            charts and wants and (not self.final_chart or card.shown != card.version)
        )

    def done(self) -> bool:
        """The run ended and Slack shows its last state: nothing more to do."""
        card = self.card
        return (card.final or self.dead) and self.settled(
            posts_done=not self.link.posts_pending()
        )

    def _wants_chart(self) -> bool:
        return self.card.options.chart and self.link.can_chart


class _Desk:
    """The process's card thread and the cards it tends."""

    def __init__(self) -> None:
        self._reset()

    def _reset(self) -> None:
        self._lock = threading.Lock()
        self._cond = threading.Condition(self._lock)
        self._slots: dict[tuple[str, str, str], _Slot] = {}
        self._thread: threading.Thread | None = None
        self._passes = 0
        self._kicked = False

    def find(self, key: tuple[str, str, str]) -> _Slot | None:
        with self._lock:
            return self._slots.get(key)

    def slot(self, key: tuple[str, str, str], make: Callable[[], _Slot]) -> _Slot:
        with self._lock:
            slot = self._slots.get(key)
            if slot is None:
                slot = self._slots[key] = make()
            return slot

    def wake(self) -> None:
        with self._cond:
            # Seen by the card thread before it sleeps: a wake-up that comes
            # while it is busy (not waiting yet) is not lost.
            self._kicked = True
            self._cond.notify_all()
        self._ensure_thread()

    def _ensure_thread(self) -> None:
        if self._thread is not None and self._thread.is_alive():
            return
        with self._lock:
            if self._thread is not None and self._thread.is_alive():
                return
            self._thread = start_daemon(self._run, "ppe_slacklog-cards")

    def _run(self) -> None:
        mark_sender_thread()
        while True:
            with self._cond:
                slots = list(self._slots.values())
            wait = _TICK
            for slot in slots:
                try:
                    wait = min(wait, self._tend(slot))
                except Exception as exc:  # a bug must not end the card thread
                    slot.dead = True
                    slot.link.once.warn(
                        ("card-bug", type(exc).__name__),
                        f"ppe_slacklog: unexpected {type(exc).__name__} while "
                        f"updating the live card in {slot.link.channel}: {exc}; "
                        "the card is no longer updated (the thread goes on).",
                    )
            with self._cond:
                self._passes += 1
                for key in [k for k, s in self._slots.items() if s.done()]:
                    # Its run ended and Slack shows the end: memory is freed
                    # (a process may run many trainings one after the other).
                    del self._slots[key]
                self._cond.notify_all()
                if not self._slots:
                    # Nothing to tend: the next run's start starts a new one.
                    self._thread = None
                    return
                if wait > 0 and not self._kicked:
                    self._cond.wait(wait)
                self._kicked = False

    def _tend(self, slot: _Slot) -> float:
        """Brings one card up to date if due; returns seconds until it wants a look."""
        card = slot.card
        now = time.monotonic()
        poll = now >= slot.next_poll
        if poll:
            slot.next_poll = now + card.options.interval
        card.absorb(poll=poll)
        if slot.dead:
            return _FAR
        if slot.ts is None and not self._find_card(slot):
            return _TICK
        if now < slot.retry_at:
            return slot.retry_at - now
        later = slot.next_poll
        if card.shown != card.version:
            due = slot.last_edit + card.options.interval
            if card.final or slot.urgent or now >= due:
                # The state first (a run's final state must not wait for
                # its chart), then the chart, which the next edit shows.
                self._edit(slot)
                return 0.0
            later = min(due, later)
        # Asked only when a chart is due: importing matplotlib holds the
        # GIL for most of a second, which the training loop would feel.
        if self._chart_due(slot, now) and slot._wants_chart():
            self._attach_chart(slot)
            card.absorb()
            return 0.0
        return max(min(later, slot.chart_at) - now, 0.0)

    def _find_card(self, slot: _Slot) -> bool:
        """A resumed run's card is the parent of the thread it continues.

        Known once the outbox posts the resumed start into that thread
        (:meth:`CardLink.introduce`, after checking that it still exists).
        The card keeps the run's first identity (who started it, how): it
        is read back from Slack, or else the resumed start's text is shown.
        """
        parent = slot.continues
        if parent is None or slot.posting is not None:
            return False
        slot.continues = None
        link = slot.link
        card = slot.card
        try:
            stored = link.api.message(link.channel, parent)
        except SlackDeliveryError:
            stored = None  # Slack away: the resumed start's text will do
        identity = identity_of(stored) if stored is not None else None
        if identity:
            with card.lock:
                card.identity = identity
        slot.ts = parent
        return True

    def _chart_due(self, slot: _Slot, now: float) -> bool:
        card = slot.card
        if card.final:
            # After the run's last messages: the chart ends the thread.
            return not slot.final_chart and not slot.link.posts_pending()
        return now >= slot.chart_at

    def _attach_chart(self, slot: _Slot) -> None:
        card = slot.card
        final = card.final
        slot.final_chart = final
        interval = card.options.chart_interval
        slot.chart_at = time.monotonic() + (interval or _FAR)
        history = card.history()
        points = sum(len(h) for h in history.values())
        longest = max((len(h) for h in history.values()), default=0)
        if longest < MIN_CHART_POINTS or points == slot.chart_points:
            # Nothing new to draw, or too little for a chart to say more
            # than the card's table (a smoke test's two epochs).
            return
        link = slot.link
        from .chart import draw_chart  # matplotlib is imported only now

        def failed(why: str) -> None:
            link.once.warn(
                ("chart", why[:60]),
                f"ppe_slacklog could not draw the chart of run {card.run_id}: "
                f"{why}; the card shows none.",
            )

        view = card.absorb()
        where = f"epoch {view.epoch}" + (
            f"/{view.max_epochs}" if view.max_epochs else ""
        )
        png = draw_chart(
            history,
            title=f"run {card.run_id[:8]} · {where}",
            best=card.best(),
            on_error=failed,
        )
        if png is None:
            return
        staged: list[str] = []
        try:
            link.api.upload(
                link.channel,
                [FileData(f"metrics-{card.run_id[:8]}.png", png)],
                comment=None,
                thread_ts=slot.ts,
                on_staged=staged.extend,
            )
        except SlackDeliveryError as exc:
            link.once.warn(
                ("chart-upload", exc.code),
                f"ppe_slacklog could not attach the run's chart in {link.channel}: "
                f"{exc.fix} (Slack error '{exc.code}'); the card shows no chart.",
            )
            return
        slot.chart_points = points
        if not staged or slot.chart_outside:
            return
        try:
            # An image block may only show a file Slack has shared (sharing
            # is asynchronous): the card shows the new chart once it is.
            shared = link.api.find_upload(
                link.channel, staged, thread_ts=slot.ts, oldest=time.time() - 60
            )
        except SlackDeliveryError:
            shared = False
        if not shared:
            return
        old = card.chart_file
        with card.lock:
            card.chart_file = staged[0]
        if old is not None:
            # Replaced, not piled up; an old chart that stays is harmless.
            with contextlib.suppress(SlackDeliveryError):
                link.api.delete_file(link.channel, old)

    def _edit(self, slot: _Slot) -> None:
        card = slot.card
        link = slot.link
        view = card.absorb()
        version = card.version
        assert slot.ts is not None
        wait = link.bucket.reserve()
        if wait > 0:
            time.sleep(wait)
        try:
            link.api.update(
                slot.channel_id or link.channel,
                slot.ts,
                card_text(view),
                blocks=card_blocks(view),
            )
        except SlackDeliveryError as exc:
            self._failed(slot, exc)
            return
        link.updates += 1
        card.shown = max(card.shown, version)
        slot.final_shown = slot.final_shown or view.state in FINAL_STATES
        slot.last_edit = time.monotonic()
        slot.backoff = _BACKOFF_FIRST
        slot.last_error = None
        slot.urgent = False

    def _failed(self, slot: _Slot, exc: SlackDeliveryError) -> None:
        link = slot.link
        now = time.monotonic()
        slot.last_error = exc
        if exc.retry_after is not None:
            link.rate_limited += 1
            link.bucket.penalize(exc.retry_after)
            slot.retry_at = now + exc.retry_after
            return
        if not exc.permanent:
            slot.retry_at = now + slot.backoff
            slot.backoff = min(slot.backoff * 2, _BACKOFF_MAX)
            return
        if exc.code in _UNEDITABLE and not slot.replaced:
            self._replace(slot, exc)
            return
        card = slot.card
        if exc.code in BAD_BLOCKS and card.chart_file is not None:
            # The chart's image block (a file Slack cannot show in a card):
            # the card goes on without it; the charts stay in the thread.
            slot.chart_outside = True
            with card.lock:
                card.chart_file = None
            return
        slot.dead = True
        what = (
            "Slack refused the card's blocks"
            if exc.code in BAD_BLOCKS
            else f"{exc.fix} (Slack error '{exc.code}')"
        )
        link.once.warn(
            ("card-dead", exc.code),
            f"ppe_slacklog stops updating the live card of run {slot.card.run_id} "
            f"in {link.channel}: {what}. Its messages still go to the thread.",
        )

    def _replace(self, slot: _Slot, exc: SlackDeliveryError) -> None:
        """Posts a new card in the run's thread, once, and edits that from now on."""
        card = slot.card
        link = slot.link
        slot.replaced = True
        threads = run_threads()
        place = link.route[0]
        parent = threads.get(place, link.channel, card.run_id) or slot.ts
        if parent is not None and exc.code == "message_not_found":
            # A deleted parent without replies takes its thread with it:
            # a reply there would be shown nowhere. Then the new card
            # starts the run's thread again, at the channel's top level.
            try:
                if link.api.thread_exists(link.channel, parent) is False:
                    threads.forget(place, link.channel, card.run_id, parent)
                    parent = None
            except SlackDeliveryError:
                pass  # cannot tell: the thread it is
        view = card.absorb()
        version = card.version
        try:
            posted = link.api.post(
                link.channel,
                card_text(view),
                thread_ts=parent,
                blocks=card_blocks(view),
            )
        except SlackDeliveryError as again:
            slot.dead = True
            link.once.warn(
                ("card-replace", again.code),
                f"ppe_slacklog cannot edit the live card of run {card.run_id} in "
                f"{link.channel} ({exc.fix}) nor post a new one ({again.fix}); the "
                "card is no longer updated. Its messages still go to the thread.",
            )
            return
        slot.ts = posted.ts
        slot.channel_id = posted.channel_id
        card.shown = max(card.shown, version)
        slot.final_shown = view.state in FINAL_STATES
        slot.last_edit = time.monotonic()
        where = "in the run's thread"
        if parent is None:
            # The run's messages go on under the new card.
            threads.adopt(place, link.channel, card.run_id, posted.ts)
            where = (
                "at the top of the channel (its thread was gone), where the "
                "run's messages continue,"
            )
        link.once.warn(
            ("card-replaced", exc.code),
            f"ppe_slacklog could not edit the live card of run {card.run_id} in "
            f"{link.channel} ({exc.fix}); a new card was posted {where} and is "
            "updated from now on.",
        )

    def flush(
        self,
        routes: Iterable[tuple[str, str]],
        deadline: float,
        posts_done: bool,
        charts: bool,
    ) -> bool:
        """Waits until the cards of ``routes`` show their newest state."""
        wanted = set(routes)
        with self._cond:
            slots = [s for s in self._slots.values() if s.route in wanted]
        if not slots:
            return True
        for slot in slots:
            slot.urgent = True
        self.wake()
        with self._cond:
            start = self._passes
            while True:
                # Only a pass that began after the request counts: it saw
                # the latest events and the urgent flags.
                idle = self._thread is None  # it ended: nothing left to tend
                if (idle or self._passes >= start + 2) and all(
                    s.settled(posts_done, charts) for s in slots
                ):
                    return True
                remaining = deadline - time.monotonic()
                if remaining <= 0 or idle:
                    break
                self._cond.wait(min(remaining, 0.2))
        for slot in slots:
            if not slot.settled(posts_done, charts) and slot.ts is not None:
                _say_late(slot)
        return False


def _say_late(slot: _Slot) -> None:
    """A flush ran out of time before Slack showed the card's newest state."""
    card = slot.card
    error = slot.last_error
    why = (
        f": Slack answered '{error.code}' to its edits ({error.fix})"
        if error is not None
        else " (its edits are paced to Slack's limit for chat.update)"
    )
    what = "final state" if card.final else "latest state"
    slot.link.once.warn(
        ("card-late", card.run_id, what),
        f"ppe_slacklog: the live card of run {card.run_id} in {slot.link.channel} "
        f"does not show the run's {what} yet{why}; raise flush_timeout to wait "
        "longer. The run's messages in the thread are not affected.",
    )


_desk = _Desk()


# Forks this process went through (as a child): a handler made before the
# last fork belongs to the parent's cards. Cheaper than os.getpid() per event.
_forks = 0


def _fresh_desk_in_child() -> None:
    # A forked child (a DataLoader worker) edits no cards: its parent does.
    global _forks
    _forks += 1
    _desk._reset()


os.register_at_fork(after_in_child=_fresh_desk_in_child)


def flush_cards(
    routes: Iterable[tuple[str, str]],
    deadline: float,
    *,
    posts_done: bool = True,
    charts: bool = False,
) -> bool:
    """Waits (until ``deadline``, monotonic) for the cards of ``routes`` to be current.

    ``posts_done``: the outboxes of those routes delivered everything, so a
    card whose first message is not posted never will be. ``charts``: also
    wait for the final charts of runs that ended (the interpreter's exit).
    A card still late at the deadline is reported once, with Slack's answer.

    Returns:
        ``True`` when every such card shows its newest state.
    """
    try:
        return _desk.flush(routes, deadline, posts_done, charts)
    except Exception:  # flushing must never raise into logging.shutdown
        return False


class CardLink:
    """A handler's cards: fed on the training thread, posted by its outbox.

    Args:
        api: The handler's transport (the card thread uses a sibling of it).
        channel: The handler's channel.
        place: Where requests go (a key that does not show a secret).
        options: The card settings.
        once: Reports each problem once, pointing at the handler's line.
    """

    def __init__(
        self,
        api: SlackApi,
        channel: str,
        place: str,
        options: CardOptions,
        once: Once,
    ) -> None:
        self.api = api.sibling()
        self.channel = channel
        self.route = (place, channel_key(channel))
        self.options = options
        self.once = once
        self.bucket: TokenBucket = bucket_for(
            api.base_url, "\0chat.update", _TIER3_RATE, _TIER3_BURST
        )
        # Whether matplotlib imports is asked on the card thread, when a
        # chart is first due: the import takes most of a second.
        self._can_chart: bool | None = None if options.chart else False
        #: Posts of the handler still to deliver (its outbox's ``pending``).
        self.posts_pending: Callable[[], int] = lambda: 0
        #: chat.update calls that succeeded, and those answered 429.
        self.updates = 0
        self.rate_limited = 0
        # run id -> slot; a weak view of the desk's registry for this handler.
        self._slots: weakref.WeakValueDictionary[str, _Slot] = (
            weakref.WeakValueDictionary()
        )
        self._forks = _forks

    def _slot(self, run_id: str, *, create: bool) -> _Slot | None:
        """Run ``run_id``'s card; a new one only for a run's start.

        A card started by a handler this one replaced (``dictConfig`` run
        again) goes on through this one. A handler that never sees a run's
        start (its filter keeps only ends and errors) makes no card.
        """
        slot = self._slots.get(run_id)
        if slot is not None:
            return slot
        key = (*self.route, run_id)
        if create:

            def make() -> _Slot:
                return _Slot(LiveCard(run_id, self.options), self)

            slot = _desk.slot(key, make)
        else:
            slot = _desk.find(key)
            if slot is None:
                return None
        slot.link = self
        self._slots[run_id] = slot
        return slot

    def feed(
        self,
        kind: EventKind,
        run_id: str,
        snapshot: ManagerSnapshot,
        run: RunFacts | None,
        *,
        note: str | None = None,
        probe: Callable[[], Progress | None] | None = None,
    ) -> None:
        """Takes one training event (on the training thread; cheap)."""
        if self._forks != _forks:
            return  # a forked child: the parent's card, not ours
        if run is not None and run.rank not in (None, 0):
            return  # one card per job, written by rank 0
        slot = self._slot(run_id, create=kind == "start")
        if slot is None:
            return
        card = slot.card
        if probe is not None:
            card.probe = probe
        card.feed(kind, snapshot, run, note)
        if kind != "trigger":
            _desk.wake()  # start, resume and the final state go at once

    @property
    def can_chart(self) -> bool:
        """Charts can be drawn (matplotlib is installed); asked lazily."""
        if self._can_chart is None:
            self._can_chart = _charts_available()
        return self._can_chart

    def unsettled(self) -> bool:
        """Some card of this handler does not show its newest state in Slack yet."""
        return any(
            not s.settled(posts_done=True, charts=True)
            for s in list(self._slots.values())
        )

    def has_card(self, run_id: str) -> bool:
        """Whether run ``run_id`` has a card here (its first post carries it)."""
        return run_id in self._slots

    def first_blocks(
        self, run_id: str, text: str, owner: object
    ) -> tuple[str, list[dict[str, Any]]] | None:
        """The text and blocks of run ``run_id``'s first message (its start: ``text``).

        Called by the outbox's sender when the post starts the run's thread.
        The text stays the start's while the run goes; a start posted late
        (Slack was away) shows the state the run is in by then. ``owner``
        (the outbox) posts the card: another handler of the channel posting
        the same start meanwhile posts it as a plain message.
        """
        slot = self._slots.get(run_id)
        if slot is None or slot.dead or slot.ts is not None:
            return None
        if slot.posting is not None and slot.posting_owner is not owner:
            return None
        card = slot.card
        with card.lock:
            card.identity = text
        view = card.absorb()
        slot.posting = card.version
        slot.posting_final = view.state in FINAL_STATES
        slot.posting_owner = owner
        return card_text(view), card_blocks(view)

    def introduce(self, run_id: str, text: str, parent: str) -> None:
        """A resumed run's start goes into thread ``parent``: the card it continues.

        ``text`` (the resumed start's) is shown until the card's first
        identity is read back from Slack.
        """
        slot = self._slots.get(run_id)
        if slot is None or slot.ts is not None or slot.posting is not None:
            return
        card = slot.card
        with card.lock:
            card.identity = text
        slot.continues = parent
        _desk.wake()

    def posted(self, run_id: str, posted: Posted) -> None:
        """The thread's first message, with the card, is in Slack."""
        slot = self._slots.get(run_id)
        if slot is None or slot.posting is None:
            return
        slot.ts = posted.ts
        slot.channel_id = posted.channel_id
        slot.card.shown = max(slot.card.shown, slot.posting)
        slot.final_shown = slot.posting_final
        slot.last_edit = time.monotonic()
        slot.posting = None
        slot.posting_owner = None
        _desk.wake()

    def refused(self, run_id: str, exc: SlackDeliveryError) -> None:
        """Slack refused the card's blocks: the message goes without them."""
        slot = self._slots.get(run_id)
        if slot is None:
            return
        slot.dead = True
        slot.posting = None
        self.once.warn(
            ("card-refused", exc.code),
            f"ppe_slacklog: Slack refused the live card of run {run_id} in "
            f"{self.channel} ({exc.fix}, Slack error '{exc.code}'); the run's "
            "messages are posted without it.",
        )

    def gave_up(self, run_id: str) -> None:
        """The first message was not posted: there is no card to edit."""
        slot = self._slots.get(run_id)
        if slot is not None:
            slot.posting = None
