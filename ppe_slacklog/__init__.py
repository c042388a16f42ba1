"""ppe_slacklog: PyTorch training events as log records, delivered to Slack.

``Slack`` is a drop-in for pytorch-pfn-extras' Slack extension that emits
structured :mod:`logging` records; ``SlackHandler`` delivers any record to
Slack threads from a background thread. ``Slack`` is imported lazily so that
programs using only the handler never import torch.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ._diagnostics import SlackDeliveryWarning
from .alerts import Alert
from .events import (
    DEFAULT_LOGGER,
    ManagerSnapshot,
    RunFacts,
    TrainingEvent,
    event_of,
)
from .filters import EventFilter, ProcessorFilter, add_git_revision, add_host
from .formatter import SlackFormatter
from .handler import SlackHandler
from .sinks import ConsoleFormatter, JsonFormatter
from .stats import DeliveryStats
from .templates import TemplateWarning, escape
from .webhook import SlackWebhookHandler

if TYPE_CHECKING:
    from .extension import Slack, SlackWebhook

__all__ = [
    "DEFAULT_LOGGER",
    "Alert",
    "ConsoleFormatter",
    "DeliveryStats",
    "EventFilter",
    "JsonFormatter",
    "ManagerSnapshot",
    "ProcessorFilter",
    "RunFacts",
    "Slack",
    "SlackDeliveryWarning",
    "SlackFormatter",
    "SlackHandler",
    "SlackWebhook",
    "SlackWebhookHandler",
    "TemplateWarning",
    "TrainingEvent",
    "add_git_revision",
    "add_host",
    "escape",
    "event_of",
]

__version__ = "0.1.0"


def __getattr__(name: str) -> Any:
    if name in ("Slack", "SlackWebhook"):
        from . import extension

        return getattr(extension, name)
    raise AttributeError(f"module 'ppe_slacklog' has no attribute {name!r}")
