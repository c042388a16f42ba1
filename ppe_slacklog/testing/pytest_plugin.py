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
from typing import TYPE_CHECKING, Any

import pytest

from ._emulator import SlackEmulator

if TYPE_CHECKING:
    from slack_sdk import WebClient

__all__ = ["slack_client", "slack_emulator"]


def pytest_configure(config: pytest.Config) -> None:
    """Register the ``slack_emulator`` marker."""
    config.addinivalue_line(
        "markers",
        "slack_emulator(**kwargs): SlackEmulator arguments for the "
        "slack_emulator fixture, e.g. rate_limits=False, share_delay=0 for a "
        "test that needs a fast Slack",
    )


@pytest.fixture
def slack_emulator(request: pytest.FixtureRequest) -> Iterator[SlackEmulator]:
    """A started :class:`SlackEmulator`, stopped after the test.

    Slack-like by default (rate limits, asynchronous file shares...); the
    ``slack_emulator`` marker passes arguments to the emulator, so a test
    that needs a fast Slack says so.

    Example:
        >>> def test_auth(slack_emulator):
        ...     assert slack_emulator.client().auth_test()["ok"]
        >>> @pytest.mark.slack_emulator(rate_limits=False, share_delay=0)
        ... def test_many_posts(slack_emulator):
        ...     for i in range(20):
        ...         slack_emulator.client().chat_postMessage(channel="general", text=i)
    """
    kwargs: dict[str, Any] = {}
    for marker in reversed(list(request.node.iter_markers("slack_emulator"))):
        kwargs.update(marker.kwargs)
    emulator = SlackEmulator(**kwargs)
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
