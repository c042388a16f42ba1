"""pytest fixtures backed by :class:`~ppe_slacklog.testing.SlackEmulator`.

Registered as a ``pytest11`` entry point, so the fixtures are available in
any project that has ``ppe_slacklog`` installed. Only the standard library
is imported here (``slack_sdk`` is imported when ``slack_client`` is used).

Example:
    >>> def test_posts(slack_emulator, slack_client):
    ...     slack_client.chat_postMessage(channel="general", text="hi")
    ...     assert slack_emulator.messages("general")[0].text == "hi"
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

import pytest

from ._emulator import SlackEmulator

if TYPE_CHECKING:
    from slack_sdk import WebClient

__all__ = ["slack_client", "slack_emulator"]


@pytest.fixture
def slack_emulator() -> Iterator[SlackEmulator]:
    """A started :class:`SlackEmulator` with default settings, stopped after.

    Example:
        >>> def test_auth(slack_emulator):
        ...     assert slack_emulator.client().auth_test()["ok"]
    """
    emulator = SlackEmulator()
    emulator.start()
    try:
        yield emulator
    finally:
        emulator.stop()


@pytest.fixture
def slack_client(slack_emulator: SlackEmulator) -> WebClient:
    """A real ``slack_sdk.WebClient`` bound to ``slack_emulator``.

    Example:
        >>> def test_post(slack_client):
        ...     assert slack_client.chat_postMessage(channel="alerts", text="x")["ok"]
    """
    return slack_emulator.client()
