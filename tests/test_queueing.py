"""The bounded queue and the pacing bucket, without Slack."""

from __future__ import annotations

import logging

import pytest

from ppe_slacklog.pacing import TokenBucket, bucket_for
from ppe_slacklog.queueing import Post, PostQueue
from ppe_slacklog.slackapi import FileData


def _texts(queue: PostQueue) -> list[str]:
    return [p.display() for p in queue.clear()]


def test_drops_oldest_non_essential_first() -> None:
    q = PostQueue(max_records=3, max_bytes=10**9)
    q.add(Post("start", kind="start"))
    q.add(Post("t1", kind="trigger"))
    q.add(Post("warn", level=logging.WARNING))
    q.add(Post("t2", kind="trigger"))
    q.add(Post("info", level=logging.INFO))
    assert _texts(q) == ["start", "warn", "info"]
    assert q.take_dropped() == {"trigger": 2}
    assert q.take_dropped() == {}


def test_essential_posts_get_twice_the_room_then_logs_go() -> None:
    q = PostQueue(max_records=2, max_bytes=10**9)
    for i in range(4):
        q.add(Post(f"w{i}", level=logging.WARNING))
    assert len(q) == 4  # up to twice the bound
    q.add(Post("end", kind="end"))
    q.add(Post("error", kind="error", level=logging.ERROR))
    assert _texts(q) == ["w2", "w3", "end", "error"]


def test_start_end_error_are_never_dropped() -> None:
    q = PostQueue(max_records=1, max_bytes=10**9)
    for kind in ["start", "error", "end", "end"]:
        q.add(Post(kind + "!", kind=kind))
    assert [p.kind for p in q.clear()] == ["start", "error", "end"]


def test_byte_bound_counts_files() -> None:
    q = PostQueue(max_records=100, max_bytes=5_000)
    q.add(Post("plot", kind="trigger", files=(FileData("a.png", b"x" * 4_000),)))
    q.add(Post("next", kind="trigger", files=(FileData("b.png", b"y" * 4_000),)))
    assert _texts(q) == ["next"]
    assert q.bytes == 0


def test_collapse_only_in_a_backlog() -> None:
    q = PostQueue(max_records=100, max_bytes=10**9)
    for _ in range(2):
        q.add(Post("same"))
    assert len(q) == 2  # not a backlog yet: both go as they are
    for _ in range(5):
        q.add(Post("same"))
    assert [p.display() for p in q.clear()] == ["same", "same", "same (×5)"]


def test_followers_respect_thread_kind_and_size() -> None:
    q = PostQueue(max_records=100, max_bytes=10**9)
    q.add(Post("a", thread_key="r", kind="trigger"))
    q.add(Post("b", thread_key="r", kind="trigger"))
    q.add(Post("c", thread_key="other", kind="trigger"))
    first = q.take()
    assert [p.text for p in q.take_followers(first, 100)] == ["b"]
    q.clear()
    q.add(Post("x" * 10))
    q.add(Post("y" * 10))
    first = q.take()
    assert q.take_followers(first, 15) == []
    q.add(Post("boom", level=logging.ERROR))
    assert q.take_followers(q.take(), 1000) == []


def test_token_bucket_and_shared_buckets() -> None:
    bucket = TokenBucket(rate=10.0, burst=2)
    assert bucket.reserve() == 0.0 and bucket.reserve() == 0.0
    assert 0.05 < bucket.reserve() <= 0.1
    a = bucket_for("http://x/api/", "#general", 1.0, 3)
    assert bucket_for("http://x/api/", "general", 1.0, 3) is a
    assert bucket_for("http://y/api/", "general", 1.0, 3) is not a
    with pytest.raises(ValueError):
        TokenBucket(rate=0, burst=1)


def test_dropped_posts_are_let_go_even_behind_a_kept_one() -> None:
    # While Slack is away nothing is taken: the posts dropped to stay within
    # the bound must not stay in memory (a kept WARNING at the head, say).
    q = PostQueue(max_records=100, max_bytes=10**9)
    q.add(Post("kept", level=logging.WARNING))
    for n in range(50_000):
        q.add(Post(f"info {n}"))
    assert len(q) == 100
    assert len(q._items) + len(q._log_items) <= 3 * 100 + 64 + 2
    assert [q.take().text for _ in range(2)] == ["kept", "info 49901"]


def test_followers_never_jump_over_posts_of_the_same_place() -> None:
    q = PostQueue(max_records=100, max_bytes=10**6)
    for post in [Post("a1"), Post("e1", "run", kind="trigger"), Post("a2")]:
        q.add(post)
    first = q.take()
    # Top level: the run's post (not yet in a thread) keeps them apart.
    assert q.take_followers(first, 1000) == []
    assert [q.take().text for _ in range(2)] == ["e1", "a2"]
