"""The emulator's thread viewer: an HTML page of what a person sees in Slack.

``GET /viewer`` shows one channel (``?channel=name``; default: the one
posted to last) with its messages, each thread open under its parent, Block
Kit cards, edits, broadcast replies and uploaded images. The page polls
``/viewer/state.json`` every second and swaps in what changed, so it follows
a run as it goes. Uploaded files are served from ``/viewer/files/<id>/<name>``.

Everything a message contains is escaped (see ``_viewer_mrkdwn``), and the
page's Content-Security-Policy allows only the viewer's own script.
"""

from __future__ import annotations

import hashlib
import html
import json
import mimetypes
import re
import time
from collections import Counter
from collections.abc import Mapping, Sequence
from typing import Any
from urllib.parse import parse_qs, quote

from ._engine import Reply
from ._models import EmulatedFile, EmulatedMessage
from ._state import BOT_USER_ID, BOT_USER_NAME, TEAM_NAME, Channel, WorkspaceState
from ._viewer_blocks import blocks_html
from ._viewer_mrkdwn import mrkdwn_html
from ._viewer_page import CSP, SCRIPT, STYLE, page_html

__all__ = ["VIEWER_PATH", "viewer_reply"]

#: Where the viewer lives on the emulator's server.
VIEWER_PATH = "/viewer"

_HEADERS = (
    ("Content-Security-Policy", CSP),
    ("X-Content-Type-Options", "nosniff"),
    ("Cache-Control", "no-store"),
    ("Referrer-Policy", "no-referrer"),
)
# Uploaded bytes are whatever a client sent (an SVG may hold a script):
# served sandboxed, so opening one directly cannot run anything.
_FILE_HEADERS = (
    ("Content-Security-Policy", "sandbox; default-src 'none'"),
    ("X-Content-Type-Options", "nosniff"),
    # A file ID never names other bytes, so the page's refreshes can take
    # images from the cache instead of reloading (and jumping) every time.
    ("Cache-Control", "private, max-age=86400"),
)
_FILE_IN_URL = re.compile(r"-(F[0-9A-Z]+)/")


def _channels(workspace: WorkspaceState) -> list[Channel]:
    # WorkspaceState has no public listing of its channels; the viewer only
    # reads them (under the workspace's lock, as its own methods do).
    with workspace._lock:
        return list(workspace._channels.values())


def _live_files(workspace: WorkspaceState) -> dict[str, EmulatedFile]:
    # getattr: files.delete marks files ``deleted`` (with chat.update's
    # change); a deleted file is shown and served no more, as in Slack.
    return {f.id: f for f in workspace.files() if not getattr(f, "deleted", False)}


class _View:
    """One rendering of the workspace: channels, messages and files."""

    def __init__(self, workspace: WorkspaceState) -> None:
        self.channels = _channels(workspace)
        self.messages = workspace.messages(None)
        self.files = _live_files(workspace)
        self._names = {c.id: c.name for c in self.channels}

    def resolve(self, some_id: str) -> str | None:
        """Name of a user or channel ID (mentions), ``None`` if unknown."""
        if some_id == BOT_USER_ID:
            return BOT_USER_NAME
        return self._names.get(some_id)

    def file_url(self, file: EmulatedFile) -> str:
        return f"{VIEWER_PATH}/files/{quote(file.id)}/{quote(file.name)}"

    def slack_file(self, ref: Mapping[str, Any]) -> tuple[str, str] | None:
        """Viewer URL and name of a Block Kit ``slack_file`` reference."""
        file_id = ref.get("id")
        url = ref.get("url")
        if not isinstance(file_id, str) and isinstance(url, str):
            found = _FILE_IN_URL.search(url)
            file_id = found.group(1) if found else None
        file = self.files.get(file_id) if isinstance(file_id, str) else None
        return None if file is None else (self.file_url(file), file.name)

    def pick(self, wanted: str | None) -> Channel | None:
        """The channel named (or with the ID) ``wanted``; else the latest."""
        if wanted:
            name = wanted.lstrip("#")
            for channel in self.channels:
                if wanted in (channel.id, channel.name) or channel.name == name:
                    return channel
            return None
        if self.messages:
            latest = self.messages[-1].channel
            for channel in self.channels:
                if channel.id == latest:
                    return channel
        return self.channels[0] if self.channels else None


def _time(ts: str | float) -> str:
    try:
        local = time.localtime(float(ts))
    except (TypeError, ValueError, OverflowError, OSError):
        return ""
    full = time.strftime("%Y-%m-%d %H:%M:%S", local)
    return (
        f'<time datetime="{html.escape(full)}" title="{html.escape(full)}">'
        f"{time.strftime('%H:%M:%S', local)}</time>"
    )


def _content(view: _View, text: str, blocks: Any) -> str:
    if isinstance(blocks, list) and blocks:
        # Slack shows the blocks; the text is the notification's fallback.
        return blocks_html(blocks, view.resolve, view.slack_file)
    if not text:
        return ""
    return f'<div class="text">{mrkdwn_html(text, view.resolve)}</div>'


def _files(view: _View, files: Sequence[EmulatedFile]) -> str:
    if not files:
        return ""
    parts = []
    for file in files:
        if file.id not in view.files:
            parts.append('<div class="missing">This file was deleted.</div>')
            continue
        url = html.escape(view.file_url(file), quote=True)
        name = html.escape(file.name)
        title = html.escape(file.title or file.name)
        kind = mimetypes.guess_type(file.name)[0] or ""
        if kind.startswith("image/"):
            parts.append(
                f'<figure><a href="{url}" target="_blank">'
                f'<img src="{url}" alt="{name}"></a>'
                f"<figcaption>{title}</figcaption></figure>"
            )
        else:
            size = f"{len(file.content):,} bytes"
            parts.append(
                f'<a class="file" href="{url}" download="{name}">'
                f"\U0001f4ce {title} ({size})</a>"
            )
    return f'<div class="files">{"".join(parts)}</div>'


def _edits(view: _View, message: EmulatedMessage, anchor: str) -> str:
    # getattr: ``edits`` (MessageEdit: at, text, blocks; previous versions,
    # oldest first) is added to EmulatedMessage with chat.update; this reads
    # messages from before and after that change alike.
    edits = getattr(message, "edits", None) or []
    if not edits:
        return ""
    items = []
    for edit in edits:
        when = _time(getattr(edit, "at", 0.0))
        body = _content(view, getattr(edit, "text", ""), getattr(edit, "blocks", None))
        items.append(f"<li>version replaced at {when}{body}</li>")
    return (
        f'<details class="edits" id="e-{anchor}"><summary class="edited">'
        f"(edited)</summary><ol>{''.join(items)}</ol></details>"
    )


def _message(view: _View, message: EmulatedMessage, **how: str) -> str:
    try:
        return _message_unguarded(view, message, **how)
    except Exception as exc:  # one odd message must not blank the page
        return (
            f'<article class="msg"><div class="missing">[this message could not '
            f"be shown: {html.escape(type(exc).__name__)}]</div></article>"
        )


def _message_unguarded(
    view: _View,
    message: EmulatedMessage,
    *,
    note: str = "",
    anchor_prefix: str = "m",
) -> str:
    anchor = html.escape(message.ts.replace(".", "-"), quote=True)
    if message.deleted:
        body = '<div class="text deleted">This message was deleted.</div>'
        author = ""
    else:
        # getattr: see _edits; ``blocks`` arrives with chat.update too.
        blocks = getattr(message, "blocks", None)
        body = (
            _content(view, message.text, blocks)
            + _files(view, message.files)
            + _edits(view, message, f"{anchor_prefix}{anchor}")
        )
        author = view.resolve(message.user) or message.user
    meta = (
        f'<div class="meta"><span class="author">{html.escape(author)}</span>'
        + ('<span class="app">APP</span>' if author == BOT_USER_NAME else "")
        + f"{_time(message.ts)}</div>"
    )
    initial = html.escape((author or "?")[:1].upper())
    return (
        f'<article class="msg" id="{anchor_prefix}-{anchor}" '
        f'data-ts="{html.escape(message.ts)}">'
        f'<div class="avatar">{initial}</div><div class="body">{meta}{note}'
        f"{body}</div></article>"
    )


def _snippet(view: _View, message: EmulatedMessage | None) -> str:
    # The parent's first line, rendered (a cut Slack token shows as typed).
    if message is None:
        return ""
    first = message.text.split("\n", 1)[0]
    cut = first[:80] + ("…" if len(first) > 80 else "")
    return f'<span class="snippet">{mrkdwn_html(cut, view.resolve)}</span>'


def _channel_html(view: _View, channel: Channel | None, wanted: str | None) -> str:
    if channel is None:
        return (
            f"<header>#{html.escape((wanted or '').lstrip('#'))}</header>"
            '<div class="empty">No such channel in the emulator.</div>'
        )
    flags = [
        label
        for on, label in (
            (channel.private, "private"),
            (channel.archived, "archived"),
            (not channel.member, "bot is not a member"),
        )
        if on
    ]
    flag_html = f'<span class="flags">{", ".join(flags)}</span>' if flags else ""
    parts = [f"<header>#{html.escape(channel.name)}{flag_html}</header>"]
    messages = [m for m in view.messages if m.channel == channel.id]
    by_ts = {m.ts: m for m in messages if m.thread_ts is None}
    threads: dict[str, list[EmulatedMessage]] = {}
    for m in messages:
        if m.thread_ts is not None:
            threads.setdefault(m.thread_ts, []).append(m)
    # The channel shows top-level messages and broadcast replies in time order.
    stream = [m for m in messages if m.thread_ts is None or m.reply_broadcast]
    stream.sort(key=lambda m: float(m.ts))
    for message in stream:
        if message.thread_ts is not None:
            note = (
                '<div class="broadcast">replied to a thread: '
                f"{_snippet(view, by_ts.get(message.thread_ts))}</div>"
            )
            parts.append(_message(view, message, note=note, anchor_prefix="b"))
            continue
        parts.append(_message(view, message))
        replies = threads.get(message.ts, [])
        if replies:
            count = f"{len(replies)} repl{'y' if len(replies) == 1 else 'ies'}"
            thread = [f'<div class="replies-head">{count}</div>']
            for reply in replies:
                note = (
                    '<div class="broadcast">Also sent to the channel</div>'
                    if reply.reply_broadcast
                    else ""
                )
                thread.append(_message(view, reply, note=note))
            parts.append(f'<section class="thread">{"".join(thread)}</section>')
    if not stream:
        parts.append(
            f'<div class="empty">No messages in #{html.escape(channel.name)} yet; '
            "they appear here as they are posted.</div>"
        )
    return "".join(parts)


def _nav_html(view: _View, current: Channel | None) -> str:
    links = []
    counts = Counter(m.channel for m in view.messages)
    for channel in view.channels:
        count = counts[channel.id]
        css = ' class="current"' if channel is current else ""
        mark = "\U0001f512" if channel.private else "#"
        links.append(
            f'<a{css} href="{VIEWER_PATH}?channel={quote(channel.name)}">'
            f"<span>{mark} {html.escape(channel.name)}</span>"
            f'<span class="count">{count}</span></a>'
        )
    return "".join(links)


def _render(workspace: WorkspaceState, wanted: str | None) -> tuple[str, str, str, str]:
    """Channel list, channel view, their version (a hash) and the channel."""
    view = _View(workspace)
    channel = view.pick(wanted)
    nav = _nav_html(view, channel)
    main = _channel_html(view, channel, wanted)
    version = hashlib.sha1((nav + main).encode("utf-8")).hexdigest()[:16]
    return nav, main, version, channel.name if channel else (wanted or "")


def _reply(body: bytes, content_type: str, status: int = 200) -> Reply:
    return Reply(status, body, content_type, _HEADERS)


def _file_reply(workspace: WorkspaceState, rest: str) -> Reply:
    file_id = rest.split("/", 1)[0]
    found = _live_files(workspace).get(file_id)
    if found is None:
        return _reply(b"No such file", "text/plain; charset=utf-8", 404)
    kind = mimetypes.guess_type(found.name)[0] or "application/octet-stream"
    shown = "inline" if kind.startswith("image/") else "attachment"
    disposition = f"{shown}; filename*=UTF-8''{quote(found.name)}"
    headers = (*_FILE_HEADERS, ("Content-Disposition", disposition))
    return Reply(200, found.content, kind, headers)


def viewer_reply(workspace: WorkspaceState, path: str, query: str) -> Reply:
    """Answer a ``GET`` under :data:`VIEWER_PATH`.

    Args:
        workspace: The emulator's workspace (read only).
        path: The URL path, starting with :data:`VIEWER_PATH`.
        query: The URL's query string (``channel=…``, ``version=…``).

    Returns:
        The page, its script or stylesheet, the JSON state, a file, or 404.

    Example:
        >>> from ._methods import Workspace
        >>> reply = viewer_reply(Workspace(("general",), None, ()), "/viewer", "")
        >>> reply.status, reply.content_type
        (200, 'text/html; charset=utf-8')
    """
    params = parse_qs(query)
    wanted = params["channel"][0] if params.get("channel") else None
    rest = path[len(VIEWER_PATH) :].lstrip("/")
    if rest in ("", "index.html"):
        nav, main, version, shown = _render(workspace, wanted)
        title = f"#{shown} · Slack emulator · {TEAM_NAME}"
        page = page_html(title, shown, version, nav, main)
        return _reply(page.encode("utf-8"), "text/html; charset=utf-8")
    if rest == "state.json":
        nav, main, version, _ = _render(workspace, wanted)
        known = params["version"][0] if params.get("version") else None
        state: dict[str, str] = {"version": version}
        if known != version:
            state.update(channels=nav, main=main)
        return _reply(json.dumps(state).encode("utf-8"), "application/json")
    if rest == "viewer.js":
        return _reply(SCRIPT.encode("utf-8"), "text/javascript; charset=utf-8")
    if rest == "viewer.css":
        return _reply(STYLE.encode("utf-8"), "text/css; charset=utf-8")
    if rest.startswith("files/"):
        return _file_reply(workspace, rest[len("files/") :])
    return _reply(b"Not Found", "text/plain; charset=utf-8", 404)
