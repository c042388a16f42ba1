"""Test helpers: a local Slack Web API emulator and pytest fixtures.

Example:
    >>> from ppe_slacklog.testing import SlackEmulator
    >>> with SlackEmulator() as emu:
    ...     _ = emu.client().chat_postMessage(channel="general", text="hello")
    ...     [m.text for m in emu.messages("general")]
    ['hello']
"""

from ._emulator import SlackEmulator
from ._models import ApiCall, EmulatedFile, EmulatedMessage, MessageEdit

__all__ = [
    "ApiCall",
    "EmulatedFile",
    "EmulatedMessage",
    "MessageEdit",
    "SlackEmulator",
]
