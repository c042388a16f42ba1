"""Shared fixtures: the Slack emulator, a clean logging state, ppe managers."""

from __future__ import annotations

import logging
import os
import re
import subprocess
import sys
import textwrap
from collections.abc import Callable, Iterator
from importlib.metadata import entry_points
from typing import Any

import pytest

from ppe_slacklog import DEFAULT_LOGGER, SlackHandler
from ppe_slacklog.testing import SlackEmulator

_PLUGIN = "ppe_slacklog.testing.pytest_plugin"

# An installed ppe_slacklog registers the plugin through its pytest11 entry
# point; naming it here as well would register it twice.
pytest_plugins = (
    []
    if any(ep.value == _PLUGIN for ep in entry_points(group="pytest11"))
    else [_PLUGIN]
)


# Most tests wait (emulated latency, rate limits, child processes), so on a
# 2-core CI machine more workers than cores pay off; see pytest_cmdline_main.
PARALLEL_WORKERS = 3
# Files whose tests share a module fixture (torchrun jobs, an example run):
# their tests stay on one worker, so the fixture runs once.
SHARED_MODULE_FIXTURES = frozenset(
    {"tests/test_distributed.py", "tests/test_example.py"}
)
_SPREAD = pytest.StashKey[bool]()


@pytest.hookimpl(tryfirst=True)
def pytest_cmdline_main(config: pytest.Config) -> None:
    """Runs the whole suite on ``PARALLEL_WORKERS`` xdist workers by default.

    Set here rather than in pyproject's ``addopts`` because ``-n`` there would
    make ``-p no:xdist`` an error. ``-n 0`` (or ``-p no:xdist``, or ``--pdb``)
    runs serially; so does a run of named files or tests (``-n 3`` spreads
    them), which would otherwise start workers for a few seconds of tests.
    Tests are spread one by one (whole files, ``--dist loadfile``, would
    leave the slowest file, test_lifecycle.py, as the critical path), except
    the ``SHARED_MODULE_FIXTURES`` files.
    Runs before xdist's own hook (registered later, so called first).
    """
    # On a worker, xdist has just turned -n off: turning it on again would
    # make every worker start workers of its own, without end.
    if hasattr(config, "workerinput") or "PYTEST_XDIST_WORKER" in os.environ:
        return
    if not config.pluginmanager.has_plugin("xdist"):
        return
    default = config.option.numprocesses is None and not config.option.usepdb
    if default and config.args_source == pytest.Config.ArgsSource.TESTPATHS:
        config.option.numprocesses = PARALLEL_WORKERS
    if config.option.numprocesses and config.option.dist == "no":
        # Also for a -n given by hand; pytest_xdist_make_scheduler spreads.
        config.option.dist = "loadscope"
        config.stash[_SPREAD] = True


@pytest.hookimpl(optionalhook=True)
def pytest_xdist_make_scheduler(config: pytest.Config, log: Any) -> Any:
    """Spreads tests one by one, except files that share a module fixture.

    Only for the distribution chosen by ``pytest_cmdline_main``. (xdist's own
    ``--dist loadgroup`` does not group with pytest 9: it renames
    ``item._nodeid``, which pytest no longer reads.)
    """
    if not config.stash.get(_SPREAD, False):
        return None
    from xdist.scheduler import LoadScopeScheduling

    class SpreadScheduling(LoadScopeScheduling):
        def _split_scope(self, nodeid: str) -> str:
            path = nodeid.split("::", 1)[0]
            return path if path in SHARED_MODULE_FIXTURES else nodeid

    return SpreadScheduling(config, log)


@pytest.fixture
def emu(slack_emulator: SlackEmulator) -> SlackEmulator:
    """The emulator, under a short name."""
    return slack_emulator


@pytest.fixture
def slack_env(emu: SlackEmulator, monkeypatch: pytest.MonkeyPatch) -> SlackEmulator:
    """``SLACK_BOT_TOKEN`` and ``SLACK_API_URL`` pointing at the emulator."""
    monkeypatch.setenv("SLACK_BOT_TOKEN", emu.token)
    monkeypatch.setenv("SLACK_API_URL", emu.base_url)
    return emu


@pytest.fixture(autouse=True)
def clean_logging(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Each test starts and ends with unconfigured loggers and no Slack env."""
    monkeypatch.delenv("SLACK_BOT_TOKEN", raising=False)
    monkeypatch.delenv("SLACK_API_URL", raising=False)
    names = [DEFAULT_LOGGER, "myproject", "ppe_slacklog", ""]
    saved = {}
    for name in names:
        logger = logging.getLogger(name)
        saved[name] = (
            logger.handlers[:],
            logger.level,
            logger.propagate,
            logger.filters[:],
        )
    yield
    for name in [*logging.root.manager.loggerDict, ""]:
        logger = logging.getLogger(name)
        for handler in logger.handlers[:]:
            if isinstance(handler, SlackHandler):
                handler.flush_timeout = 2.0
                handler.close()
        if name not in saved:
            logger.handlers.clear()
            logger.setLevel(logging.NOTSET)
            logger.propagate = True
            logger.filters.clear()
    for name, (handlers, level, propagate, filters) in saved.items():
        logger = logging.getLogger(name)
        logger.handlers[:] = handlers
        logger.setLevel(level)
        logger.propagate = propagate
        logger.filters[:] = filters


def make_manager(max_epochs: int = 3, iters_per_epoch: int = 2, **kw: Any) -> Any:
    """A real pytorch-pfn-extras manager around a tiny model."""
    import pytorch_pfn_extras as ppe
    import torch

    model = torch.nn.Linear(2, 1)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    return ppe.training.ExtensionsManager(
        model, optimizer, max_epochs, iters_per_epoch=iters_per_epoch, **kw
    )


def run_training(
    manager: Any,
    report: Callable[[Any], dict[str, Any]] | None = None,
    fail_at: int | None = None,
) -> None:
    """Runs the manager to the end, reporting ``report(manager)`` each iteration.

    With ``fail_at``, raises ``ValueError("boom")`` inside that iteration.
    """
    import pytorch_pfn_extras as ppe

    while not manager.stop_trigger:
        with manager.run_iteration():
            if fail_at is not None and manager.iteration + 1 == fail_at:
                raise ValueError("boom")
            if report is not None:
                ppe.reporting.report(report(manager))


def run_python(
    emu: SlackEmulator, code: str, timeout: float = 90.0
) -> subprocess.CompletedProcess[str]:
    """Runs ``code`` (dedented) in a child Python whose Slack is the emulator."""
    env = {**os.environ, "SLACK_BOT_TOKEN": emu.token, "SLACK_API_URL": emu.base_url}
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def slack_dict_config(emu: SlackEmulator, **handler: Any) -> dict[str, Any]:
    """A dictConfig: one SlackHandler for training events and ``myproject``."""
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "handlers": {
            "slack": {
                "()": "ppe_slacklog.SlackHandler",
                "channel": "experiment-progress",
                "base_url": emu.base_url,
                **handler,
            },
        },
        "loggers": {
            "ppe_slacklog.training": {"handlers": ["slack"], "level": "INFO"},
            "myproject": {"handlers": ["slack"], "level": "WARNING"},
        },
    }


_CARD_STATE = re.compile(r"^(✅ Finished|❌ Failed|⚠️ Interrupted|⏹️ Stopped early) · ")


def start_text(message: Any) -> str:
    """A thread parent's start text (or a text), without the card's state."""
    text = message if isinstance(message, str) else message.text
    return _CARD_STATE.sub("", text, count=1)


def is_chart(message: Any) -> bool:
    """Whether ``message`` is the live card's chart (a file message of its own)."""
    return bool(message.files) and all(
        f.name.startswith("metrics-") for f in message.files
    )


def thread_texts(emu: SlackEmulator, channel: str, ts: str | None = None) -> list[str]:
    """The texts of a run's thread as ppe would post them (the card's parts left out).

    ``ts`` defaults to the channel's only top-level message.
    """
    if ts is None:
        (top,) = emu.top_level(channel)
        ts = top.ts
    parent, *replies = emu.thread(channel, ts)
    return [start_text(parent), *(m.text for m in replies if not is_chart(m))]
