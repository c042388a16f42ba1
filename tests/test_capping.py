"""One huge record is capped, so the records after it still reach Slack."""

from __future__ import annotations

import logging
import random
import re
import sys
import time
from collections.abc import Iterator

import pytest
import regex
from conftest import make_manager

import ppe_slacklog
from ppe_slacklog import SlackHandler
from ppe_slacklog.capping import MIN_RECORD_CHARS, cap_text, record_limit
from ppe_slacklog.testing import SlackEmulator

CHANNEL = "experiment-progress"
NOTICE = re.compile(r"✂️ _… ([\d,]+) lines? \(([\d,]+) characters\) left out here …_")


def _readings(capped: str) -> tuple[list[tuple[str, str]], int, int]:
    """The (head, tail) pairs ``capped`` may stand for, and the two counts.

    A fence line next to the notice was either added (to close or reopen a
    code block cut open) or was in the text: both readings are tried.
    """
    found = NOTICE.search(capped)
    assert found is not None, capped[:200]
    head = capped[: found.start()].removesuffix("\n")
    tail = capped[found.end() :].removeprefix("\n")
    heads = [head] + ([head[:-4]] if head.endswith("\n```") else [])
    tails = [tail] + ([tail[4:]] if tail.startswith("```\n") else [])
    lines, chars = (int(g.replace(",", "")) for g in found.groups())
    return [(h, t) for h in heads for t in tails], lines, chars


def _fits(text: str, head: str, tail: str, lines: int, chars: int) -> bool:
    if not (text.startswith(head) and text.endswith(tail)):
        return False
    if len(head) + len(tail) >= len(text):
        return False
    middle = text[len(head) : len(text) - len(tail)]
    seams = middle.removeprefix("\n").removesuffix("\n")
    return chars == len(seams) and lines == seams.count("\n") + 1


def _check(text: str, limit: int) -> tuple[str, str]:
    capped = cap_text(text, limit)
    if len(text) <= limit:
        assert capped == text
        return text, ""
    assert len(capped) <= limit
    # The notice is outside code; code blocks balanced if they were before.
    before_notice = capped[: NOTICE.search(capped).start()]
    assert before_notice.count("```") % 2 == 0
    assert capped.count("```") % 2 == text.count("```") % 2
    readings, lines, chars = _readings(capped)
    # Head and tail are the text's own, and the notice counts exactly what
    # is missing between them (the line breaks at the seams aside).
    fitting = [(h, t) for h, t in readings if _fits(text, h, t, lines, chars)]
    assert fitting, (capped[:100], capped[-100:])
    head, tail = fitting[0]
    # Never inside a character or an escaped entity.
    if len(text) < 100_000:  # (the oracle is slow on long texts)
        boundaries = {m.end() for m in regex.finditer(r"\X", text)} | {0}
        assert len(head) in boundaries and len(text) - len(tail) in boundaries
    for entity in ("&lt;", "&gt;", "&amp;"):
        for cut in (len(head), len(text) - len(tail)):
            start = text.rfind("&", 0, cut)
            if start >= 0 and text.startswith(entity, start):
                assert cut >= start + len(entity) or cut <= start
    return head, tail


def test_short_texts_are_unchanged() -> None:
    assert cap_text("hello", MIN_RECORD_CHARS) == "hello"
    text = "x" * 1000
    assert cap_text(text, 1000) == text


def test_many_lines_keep_head_and_tail_at_line_ends() -> None:
    text = "\n".join(f"line {i}" for i in range(100_000))
    head, tail = _check(text, 12_000)
    assert head.startswith("line 0\nline 1\n") and not head.endswith("\n")
    assert tail.endswith("line 99999") and tail.startswith("line ")
    assert len(head) > 4000 and len(tail) > 4000


def test_a_traceback_keeps_its_start_and_the_raised_exception() -> None:
    frames = "\n".join(
        f'  File "train.py", line {i}, in step\n    step(x)' for i in range(50_000)
    )
    text = (
        "❌ *myproject* training failed\n```\nTraceback (most recent call last):\n"
        f"{frames}\nValueError: the end\n```"
    )
    capped = cap_text(text, 12_000)
    head, tail = _check(text, 12_000)
    assert "Traceback (most recent call last):" in head
    assert tail.endswith("ValueError: the end\n```")
    # The notice is outside the code block, both halves inside one.
    before, _, after = capped.partition(NOTICE.search(capped).group())
    assert before.endswith("\n```\n") and after.startswith("\n```\n")
    assert before.count("```") == 2 and after.count("```") == 2


def test_one_huge_line_is_cut_inside_at_safe_places() -> None:
    for unit in ("x", "&lt;", "🇯🇵", "👨\u200d👩\u200d👧", "e\u0301", "&amp;🇺🇸`"):
        for shift in range(4):
            _check("a" * shift + unit * 3000, 1000 + shift)


def test_a_huge_line_without_ascii_is_capped() -> None:
    # Nothing to anchor on near the cut: segmenting must stay linear.
    text = "日本語🇯🇵" * 250_000
    head, tail = _check(text, 12_000)
    assert set(regex.findall(r"\X", head + tail)) == {"日", "本", "語", "🇯🇵"}


def test_random_texts_stay_balanced_and_bounded() -> None:
    rng = random.Random(9)
    pieces = ["```", "&lt;", "🇯🇵", "e\u0301", "x" * 50, "y" * 500, "", "`"]
    for _ in range(100):
        lines = ["".join(rng.choices(pieces, k=rng.randint(0, 8))) for _ in range(80)]
        text = "\n".join(lines)
        limit = rng.randint(MIN_RECORD_CHARS, 3000)
        _check(text, limit)


def test_limits() -> None:
    assert record_limit(None, 4000) == 12_000
    assert record_limit(None, 50) == MIN_RECORD_CHARS
    assert record_limit(30_000, 4000) == 30_000
    with pytest.raises(ValueError, match="max_record_chars"):
        record_limit(10, 4000)
    with pytest.raises(ValueError, match="max_record_chars"):
        SlackHandler(CHANNEL, "xoxb-test", max_record_chars=10)


# -- against the emulator --------------------------------------------------------


@pytest.fixture
def logger(emu: SlackEmulator) -> Iterator[tuple[logging.Logger, SlackHandler]]:
    handler = SlackHandler(CHANNEL, emu.token, base_url=emu.base_url)
    log = logging.getLogger("myproject")
    log.addHandler(handler)
    log.setLevel(logging.INFO)
    log.propagate = False  # pytest would print megabytes on a failure
    yield log, handler


def test_a_5mb_record_does_not_hold_up_the_error_after_it(
    emu: SlackEmulator, logger: tuple[logging.Logger, SlackHandler]
) -> None:
    log, handler = logger
    log.info("dump: %s", "0123456789abcdef<>" * 290_000)  # about 5 MB
    log.error("the run is broken")
    assert handler.drain()  # within flush_timeout (10 s), not ~20 minutes
    texts = [m.text for m in emu.messages(CHANNEL)]
    assert texts[-1] == "❌ *myproject* the run is broken"
    assert len(texts) <= 6  # (the text of ~1,283 messages before the cap)
    assert any(NOTICE.search(t) for t in texts)
    assert sum(map(len, texts[:-1])) <= handler.max_record_chars + 100
    assert handler.stats.dropped == 0


def _fail(depth: int) -> None:
    # Two functions calling each other: no frame repeats the one before it,
    # so the traceback keeps every one of them (two lines per frame).
    if depth == 0:
        raise ValueError("the end")
    _fail_too(depth - 1)


def _fail_too(depth: int) -> None:
    _fail(depth)


@pytest.fixture
def deep() -> Iterator[int]:
    limit = sys.getrecursionlimit()
    sys.setrecursionlimit(60_000)
    yield 25_000  # 50,000 frames: a 100,000-line traceback
    sys.setrecursionlimit(limit)


def test_the_end_of_a_100k_line_traceback_arrives(
    emu: SlackEmulator, logger: tuple[logging.Logger, SlackHandler], deep: int
) -> None:
    log, handler = logger
    try:
        _fail(deep)
    except ValueError:
        log.exception("training failed")
    log.warning("after it")
    assert handler.drain()
    texts = [m.text for m in emu.messages(CHANNEL)]
    assert texts[0].startswith("❌ *myproject* training failed\n```\nTraceback")
    error = "\n".join(texts[:-1])
    assert error.endswith("ValueError: the end\n```")
    assert NOTICE.search(error) is not None
    assert texts[-1] == "⚠️ *myproject* after it"
    assert all(t.count("```") % 2 == 0 for t in texts)


def test_on_error_with_a_huge_traceback_is_quick_and_complete(
    slack_env: SlackEmulator, deep: int
) -> None:
    handler = SlackHandler(CHANNEL)
    training = logging.getLogger(ppe_slacklog.DEFAULT_LOGGER)
    training.addHandler(handler)
    training.setLevel(logging.INFO)
    training.propagate = False  # pytest's log capture would format it twice more
    manager = make_manager(max_epochs=2)
    manager.extend(ppe_slacklog.Slack(CHANNEL))
    started = time.monotonic()
    with pytest.raises(ValueError), manager.run_iteration():
        _fail(deep)
    elapsed = time.monotonic() - started
    # on_error flushed everything before re-raising, within its bound.
    assert handler.pending == 0
    assert elapsed < handler.flush_timeout
    thread = slack_env.thread(CHANNEL, slack_env.top_level(CHANNEL)[0].ts)
    error = "\n".join(m.text for m in thread[1:])
    assert "ValueError: the end" in error
    assert NOTICE.search(error) is not None
    # The innermost frame, where the exception was raised, is there.
    assert error.endswith('raise ValueError("the end")\n```')
