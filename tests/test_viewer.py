"""The emulator's thread viewer, read in a real headless Chromium.

The browser is driven over the Chrome DevTools Protocol on a pipe
(``--remote-debugging-pipe``: JSON messages ending in NUL on fds 3 and 4), so
the test can open the page while a training runs, keep it open and read
what the page's own script made of it, like a person watching the run.
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import select
import shutil
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from conftest import make_manager, run_training

from ppe_slacklog import Slack
from ppe_slacklog.testing import EmulatedMessage, SlackEmulator

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
needs_chromium = pytest.mark.skipif(
    CHROMIUM is None,
    reason=(
        "the viewer is tested in a real browser and no Chromium is installed "
        "(Debian/Ubuntu: apt-get install chromium)"
    ),
)

# 1x1 PNG (a red pixel): an uploaded image the viewer must show inline.
PNG = base64.b64decode(
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8DwHwAFBQIAX8jx0gAAAABJRU5ErkJggg=="
)
# What a message may contain that must never run: shown as text.
HOSTILE = (
    "<script>document.body.setAttribute('data-pwned','script')</script>"
    "<img src=x onerror=\"document.body.setAttribute('data-pwned','img')\">"
)

# argv: read fd, write fd, program, args. Copies above 10 first, so that
# moving one pipe to 3 or 4 cannot close the other; only 3 and 4 are inherited.
_WIRE_FDS = """
import fcntl, os, sys
fds = [int(fd) for fd in sys.argv[1:3]]
read, write = (fcntl.fcntl(fd, fcntl.F_DUPFD_CLOEXEC, 10) for fd in fds)
for fd in fds:
    os.close(fd)
os.dup2(read, 3)
os.dup2(write, 4)
os.execv(sys.argv[3], sys.argv[3:])
"""


class Browser:
    """A headless Chromium page, driven over the DevTools protocol on a pipe."""

    def __init__(self, profile: Path) -> None:
        to_browser_r, self._to_browser = os.pipe()
        self._from_browser, from_browser_w = os.pipe()

        assert CHROMIUM is not None
        # Chromium reads commands on fd 3 and answers on fd 4. A small Python
        # puts the pipes there and execs it (preexec_fn is not safe with the
        # emulator's threads running).
        self._proc = subprocess.Popen(
            [
                sys.executable,
                "-c",
                _WIRE_FDS,
                str(to_browser_r),
                str(from_browser_w),
                CHROMIUM,
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--no-first-run",
                "--hide-scrollbars",
                "--remote-debugging-pipe",
                f"--user-data-dir={profile}",
                "about:blank",
            ],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            pass_fds=(to_browser_r, from_browser_w),
        )
        os.close(to_browser_r)
        os.close(from_browser_w)
        self._next_id = 0
        self._buffer = b""
        target = self._call("Target.createTarget", url="about:blank")["targetId"]
        self._session = self._call(
            "Target.attachToTarget", targetId=target, flatten=True
        )["sessionId"]

    def _call(self, method: str, session: str | None = None, **params: Any) -> Any:
        self._next_id += 1
        message: dict[str, Any] = {
            "id": self._next_id,
            "method": method,
            "params": params,
        }
        if session is not None:
            message["sessionId"] = session
        os.write(self._to_browser, json.dumps(message).encode() + b"\0")
        deadline = time.monotonic() + 60
        while True:
            while b"\0" in self._buffer:
                raw, self._buffer = self._buffer.split(b"\0", 1)
                answer = json.loads(raw)
                if answer.get("id") == self._next_id:
                    if "error" in answer:
                        raise RuntimeError(f"{method}: {answer['error']}")
                    return answer["result"]
            left = deadline - time.monotonic()
            assert left > 0, f"Chromium did not answer {method}"
            ready, _, _ = select.select([self._from_browser], [], [], left)
            if ready:
                chunk = os.read(self._from_browser, 1 << 16)
                assert chunk, "Chromium exited"
                self._buffer += chunk

    def page(self, method: str, **params: Any) -> Any:
        """Call a DevTools method on the page."""
        return self._call(method, self._session, **params)

    def evaluate(self, expression: str) -> Any:
        """The value of a JavaScript expression in the page."""
        result = self.page(
            "Runtime.evaluate", expression=expression, returnByValue=True
        )
        assert "exceptionDetails" not in result, result
        return result["result"].get("value")

    def open(self, url: str, width: int = 1200, height: int = 900) -> None:
        """Load ``url`` and wait until it has loaded."""
        self.page(
            "Emulation.setDeviceMetricsOverride",
            width=width,
            height=height,
            deviceScaleFactor=1,
            mobile=False,
        )
        self.page("Page.navigate", url=url)
        self.wait_until("document.readyState === 'complete' && !!document.body")

    def wait_until(self, expression: str, timeout: float = 30.0) -> None:
        """Poll ``expression`` in the page until it is true (a deadline, for
        failing, not a measurement)."""
        deadline = time.monotonic() + timeout
        while not self.evaluate(expression):
            assert time.monotonic() < deadline, f"never true: {expression}"
            time.sleep(0.1)

    def screenshot(self, path: Path) -> None:
        """Save a PNG of the page."""
        data = self.page("Page.captureScreenshot", format="png")["data"]
        path.write_bytes(base64.b64decode(data))

    def close(self) -> None:
        """Quit Chromium and wait for it."""
        with contextlib.suppress(AssertionError, OSError, RuntimeError):
            self._call("Browser.close")
        try:
            self._proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self._proc.kill()
            self._proc.wait()
        os.close(self._to_browser)
        os.close(self._from_browser)


@pytest.fixture
def browser(tmp_path: Path) -> Iterator[Browser]:
    """A headless Chromium page (the test is skipped without Chromium)."""
    if CHROMIUM is None:
        pytest.skip("no Chromium")
    started = Browser(tmp_path / "profile")
    try:
        yield started
    finally:
        started.close()


def viewer_url(emu: SlackEmulator, channel: str) -> str:
    return emu.base_url.replace("/api/", f"/viewer?channel={channel}")


def main_text(browser: Browser) -> str:
    """The channel as rendered text (what a person reads)."""
    return str(browser.evaluate("document.getElementById('main').innerText"))


@needs_chromium
@pytest.mark.slack_emulator(rate_limits=False)
def test_viewer_follows_a_training_run(
    emu: SlackEmulator, browser: Browser, tmp_path: Path
) -> None:
    plot = tmp_path / "plot.png"
    plot.write_bytes(PNG)
    paused, resume = threading.Event(), threading.Event()

    def report(manager: Any) -> dict[str, float]:
        # manager.iteration counts the iterations done before this one.
        if manager.iteration == 2:  # epoch 1 reported, epoch 2 not yet
            paused.set()
            assert resume.wait(60)
        if manager.iteration == 4:
            # A frame named <lambda>: the traceback holds a "<" to unescape.
            (lambda: 1 / 0)()
        return {"loss": 1.0 / (manager.iteration + 1)}

    manager = make_manager(max_epochs=3, iters_per_epoch=2)
    manager.extend(
        Slack(
            "experiment-progress",
            msg="Epoch #{manager.epoch}: loss = {loss:.3f}",
            start_msg=(
                "{default}\n<@U0000001> follow <https://example.com/runs/7|the run>"
            ),
            filenames=[str(plot)],
            upload_trigger=(1, "epoch"),
            broadcast=("error",),
            token=emu.token,
            base_url=emu.base_url,
        ),
        trigger=(1, "epoch"),
    )
    failures: list[BaseException] = []

    def train() -> None:
        try:
            run_training(manager, report)
        except ZeroDivisionError:
            pass
        except BaseException as exc:  # reported by the test thread
            failures.append(exc)
            paused.set()

    worker = threading.Thread(target=train)
    worker.start()
    try:
        assert paused.wait(60)
        assert not failures, failures
        # Epoch 1's reply carries the uploaded plot (shared a moment later).
        assert emu.wait_for(lambda e: any(m.files for m in e.messages()), 30)
        # Loaded during the run: the start message and epoch 1 are there.
        # A short window, so that the channel does not fit and scrolls.
        browser.open(viewer_url(emu, "experiment-progress"), height=160)
        during = main_text(browser)
        assert "Training started" in during
        assert "Epoch #1: loss = 0.500" in during
        assert "Epoch #2" not in during
        assert browser.evaluate("document.querySelector('.files img').naturalWidth"), (
            "the uploaded image is not shown inline"
        )
        # It opens at the bottom, like Slack; a person scrolls up to the
        # start, and the page must stay there while it refreshes.
        assert browser.evaluate("document.getElementById('main').scrollTop") > 0
        browser.evaluate("document.getElementById('main').scrollTop = 0")
        updates = int(browser.evaluate("document.body.dataset.updates || '0'"))
        resume.set()
        worker.join(60)
        assert not failures, failures
        emu.share_pending_files()
        # The same page refreshes by itself as the run goes on.
        browser.wait_until(
            "document.getElementById('main').innerText"
            ".includes('Error during training')"
        )
        assert int(browser.evaluate("document.body.dataset.updates")) > updates
        assert browser.evaluate("document.getElementById('main').scrollTop") == 0
    finally:
        resume.set()
        worker.join(60)

    emu.client().chat_postMessage(channel="experiment-progress", text=HOSTILE)
    # Loaded again after the run: the whole thread as a person reads it.
    browser.open(viewer_url(emu, "experiment-progress"))
    after = main_text(browser)
    assert "Epoch #2: loss = 0.250" in after
    # mrkdwn rendered: *bold* is bold, the mention and link are named.
    assert browser.evaluate(
        "Array.from(document.querySelectorAll('#main b'))"
        ".some(b => b.textContent.includes('Training started'))"
    )
    assert browser.evaluate(
        "Array.from(document.querySelectorAll('.mention'))"
        ".some(m => m.textContent === '@ppe-slacklog-bot')"
    )
    assert browser.evaluate(
        "Array.from(document.querySelectorAll('#main a'))"
        ".some(a => a.textContent === 'the run'"
        " && a.href === 'https://example.com/runs/7')"
    )
    # The traceback is a code block with "<lambda>", not "&lt;lambda&gt;"
    # (the live card's metrics table is a code block too).
    blocks = json.loads(
        str(
            browser.evaluate(
                "JSON.stringify(Array.from(document.querySelectorAll('#main pre'))"
                ".map(p => p.innerText))"
            )
        )
    )
    # The broadcast error may show its traceback twice: each one reads right.
    codes = [b for b in blocks if "Traceback" in b or "File " in b]
    assert codes, blocks
    for code in codes:
        assert "<lambda>" in code and "&lt;" not in code
    # The card at the top of the thread shows how the run ended.
    assert "❌ Failed" in after
    # The error reply is broadcast: marked in the thread, repeated in the channel.
    assert "Also sent to the channel" in after
    assert "replied to a thread" in after
    # The hostile message is text on the page, and ran nothing.
    assert "<script>document.body.setAttribute" in after
    assert "onerror=" in after
    assert browser.evaluate("document.body.getAttribute('data-pwned')") is None
    assert browser.evaluate("document.querySelectorAll('script').length") == 1
    assert (
        browser.evaluate("document.querySelectorAll('#main img[onerror]').length") == 0
    )


@pytest.mark.slack_emulator(rate_limits=False, share_delay=0)
def test_viewer_serves_uploaded_files_and_its_state(emu: SlackEmulator) -> None:
    client = emu.client()
    channel = emu.channel_id("general")
    client.files_upload_v2(channel=channel, file=PNG, filename="plot.png")
    emu.share_pending_files()
    [file] = emu.files
    root = emu.base_url.replace("/api/", "")
    with urllib.request.urlopen(f"{root}/viewer/files/{file.id}/plot.png") as r:
        assert r.read() == PNG
        assert r.headers["Content-Type"] == "image/png"
        assert "sandbox" in r.headers["Content-Security-Policy"]
    with urllib.request.urlopen(f"{root}/viewer/state.json?channel=general") as r:
        state = json.load(r)
    assert f"/viewer/files/{file.id}/plot.png" in state["main"]
    # Asked with the version it has, an unchanged page gets the version only.
    query = f"channel=general&version={state['version']}"
    with urllib.request.urlopen(f"{root}/viewer/state.json?{query}") as r:
        assert json.load(r) == {"version": state["version"]}
    with urllib.request.urlopen(f"{root}/viewer") as r:
        page = r.read().decode()
        assert "script-src 'self'" in r.headers["Content-Security-Policy"]
    assert 'data-channel="general"' in page  # the channel posted to last
    # The viewer is not part of Slack's API: the call log does not see it.
    assert [c.method for c in emu.calls if c.method.startswith("viewer")] == []


# chat.update and stored blocks come with the emulator's live-card support.
_HAS_CARDS = "blocks" in getattr(EmulatedMessage, "__dataclass_fields__", {})


@needs_chromium
@pytest.mark.skipif(
    not _HAS_CARDS, reason="this emulator stores no blocks (needs chat.update)"
)
@pytest.mark.slack_emulator(rate_limits=False, share_delay=0)
def test_viewer_shows_cards_and_edits(emu: SlackEmulator, browser: Browser) -> None:
    client = emu.client()
    client.files_upload_v2(
        channel=emu.channel_id("general"), file=PNG, filename="chart.png"
    )
    emu.share_pending_files()
    [chart] = emu.files

    def card(epoch: int) -> list[dict[str, Any]]:
        return [
            {"type": "header", "text": {"type": "plain_text", "text": "Run <7>"}},
            {
                "type": "section",
                "text": {"type": "mrkdwn", "text": f"*Epoch {epoch}* of 10"},
                "fields": [
                    {"type": "mrkdwn", "text": "*loss*\n0.25"},
                    {"type": "mrkdwn", "text": "*lr*\n`0.1`"},
                ],
            },
            {"type": "divider"},
            {
                "type": "image",
                "slack_file": {"id": chart.id},
                "alt_text": "loss chart",
            },
            {"type": "context", "elements": [{"type": "mrkdwn", "text": HOSTILE}]},
            {"type": "markdown", "text": "**Notes** see [docs](https://x.org)"},
        ]

    ts = client.chat_postMessage(channel="general", text="run 7", blocks=card(1))["ts"]
    # chat.update takes channel IDs only, like Slack.
    general = emu.channel_id("general")
    client.chat_update(channel=general, ts=ts, text="run 7", blocks=card(2))
    browser.open(viewer_url(emu, "general"))
    text = main_text(browser)
    assert "Run <7>" in text
    assert "Epoch 2 of 10" in text
    fields = "document.querySelectorAll('.body > .card .bk-field').length"
    assert browser.evaluate(fields) == 2
    assert browser.evaluate("document.querySelector('.bk-image img').naturalWidth")
    assert (
        browser.evaluate("document.querySelector('.bk-markdown b').textContent")
        == "Notes"
    )
    # Edited: marked, and the previous version is there to open.
    assert "(edited)" in text
    browser.evaluate("document.querySelector('details.edits').open = true")
    assert "Epoch 1 of 10" in main_text(browser)
    assert browser.evaluate("document.body.getAttribute('data-pwned')") is None


@pytest.mark.parametrize(
    ("text", "shown"),
    [
        ("*bold* _it_ ~gone~", "<b>bold</b> <i>it</i> <s>gone</s>"),
        ("snake_case_name and 2*3*4", "snake_case_name and 2*3*4"),
        ("in &lt;module&gt; a &amp;amp; b", "in &lt;module&gt; a &amp;amp; b"),
        ("```x &lt; 1\n*y*```", "<pre>x &lt; 1\n*y*</pre>"),
        ("a\n&gt; quoted\n> too\nb", "a<blockquote>quoted\ntoo</blockquote>b"),
        (
            "<!here> <@U0000001>",
            '<span class="mention">@here</span> '
            '<span class="mention">@ppe-slacklog-bot</span>',
        ),
        ("<#C0000002>", '<span class="mention">#experiment-progress</span>'),
        ("<javascript:alert(1)|click>", "&lt;javascript:alert(1)|click&gt;"),
        (
            '<https://x.org/"onmouseover="a|x>',
            '<a href="https://x.org/&quot;'
            'onmouseover=&quot;a" target="_blank" rel="noopener noreferrer">x</a>',
        ),
        ("`<b>` :fire:", "<code>&lt;b&gt;</code> :fire:"),
    ],
)
def test_mrkdwn_is_rendered_and_escaped(text: str, shown: str) -> None:
    from ppe_slacklog.testing._viewer_mrkdwn import mrkdwn_html

    names = {"U0000001": "ppe-slacklog-bot", "C0000002": "experiment-progress"}
    assert mrkdwn_html(text, names.get) == shown


def test_blocks_of_any_shape_render_without_markup_from_the_message() -> None:
    from ppe_slacklog.testing._viewer_blocks import blocks_html

    odd = [
        {"type": "header", "text": "not an object"},
        {
            "type": "section",
            "fields": "nope",
            "text": {"type": "plain_text", "text": "<i>x</i>"},
        },
        {"type": "image", "image_url": "javascript:alert(1)", "alt_text": "<a>"},
        {"type": "context", "elements": [{"type": "image", "slack_file": {}}]},
        {"type": "<script>"},
        "not a block",
    ]
    rendered = blocks_html(odd, lambda _: None, lambda _: None)
    assert "<i>" not in rendered and "<script>" not in rendered
    assert "javascript:" not in rendered
    assert "&lt;i&gt;x&lt;/i&gt;" in rendered
