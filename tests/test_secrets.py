"""The token and the webhook URL never reach a pickle, a checkpoint or ``vars()``.

An extension pickled (or ``torch.save``-d) leaves its secret out and reads it
again from the environment when loaded; a handler refuses to be pickled with
a clear error. Round trips are checked against the emulator.
"""

from __future__ import annotations

import copy
import io
import logging
import pickle
import warnings
from typing import Any

import pytest
import torch
from conftest import make_manager, run_training

import ppe_slacklog
from ppe_slacklog import SlackHandler, SlackWebhookHandler
from ppe_slacklog.testing import SlackEmulator

CHANNEL = "experiment-progress"


def _hook_secret(url: str) -> str:
    return url.rstrip("/").rpartition("/")[2]


def _torch_round_trip(obj: Any) -> tuple[bytes, Any]:
    buffer = io.BytesIO()
    torch.save(obj, buffer)
    data = buffer.getvalue()
    buffer.seek(0)
    return data, torch.load(buffer, weights_only=False)


def _shown(obj: Any) -> str:
    """What ``vars()`` shows of ``obj``, one level into its values too."""
    return repr(vars(obj)) + "".join(
        repr(vars(v)) for v in vars(obj).values() if hasattr(v, "__dict__")
    )


def test_pickled_extension_holds_no_token_and_loads_it_again(
    emu: SlackEmulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    ext = ppe_slacklog.Slack(
        CHANNEL, msg="{default}", token=emu.token, base_url=emu.base_url
    )
    assert emu.token not in _shown(ext)
    assert emu.token not in repr(ext)
    data = pickle.dumps(ext)
    assert emu.token.encode() not in data
    with pytest.warns(UserWarning, match="loaded without its secret"):
        saved, _ = _torch_round_trip(ext)  # SLACK_BOT_TOKEN is not set yet
    assert emu.token.encode() not in saved

    # Loaded where SLACK_BOT_TOKEN is set: it posts with that token.
    monkeypatch.setenv("SLACK_BOT_TOKEN", emu.token)
    loaded = pickle.loads(data)
    assert loaded.run_id == ext.run_id
    manager = make_manager(max_epochs=1)
    manager.extend(loaded)
    run_training(manager)
    texts = [m.text for m in emu.messages(CHANNEL)]
    assert texts[1] == "Epoch #1" and len(texts) == 3


def test_extension_saved_during_training_round_trips(
    slack_env: SlackEmulator,
) -> None:
    """After initialize the extension holds a live handler: it is left out."""
    ext = ppe_slacklog.Slack(CHANNEL, msg="{default}")
    manager = make_manager(max_epochs=2)
    manager.extend(ext)
    saved: list[bytes] = []
    loaded: list[Any] = []

    def report(m: Any) -> dict[str, Any]:
        if m.iteration == 1:
            data, copy_ = _torch_round_trip(ext)
            saved.append(data)
            loaded.append(copy_)
        return {}

    run_training(manager, report)
    assert slack_env.token.encode() not in saved[0]
    assert len(slack_env.messages(CHANNEL)) == 4  # the original is unharmed
    again = make_manager(max_epochs=1)
    again.extend(loaded[0])
    run_training(again)
    assert len(slack_env.messages(CHANNEL)) == 7


def test_loaded_without_a_token_warns_and_training_goes_on(
    emu: SlackEmulator,
) -> None:
    ext = ppe_slacklog.Slack(CHANNEL, token=emu.token, base_url=emu.base_url)
    with pytest.warns(UserWarning, match="SLACK_BOT_TOKEN") as caught:
        loaded = pickle.loads(pickle.dumps(ext))
    assert all(emu.token not in str(w.message) for w in caught)
    manager = make_manager(max_epochs=1)
    manager.extend(loaded)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        run_training(manager)
    assert manager.iteration == 2
    assert emu.messages(CHANNEL) == []


def test_deepcopy_keeps_the_token_in_memory(emu: SlackEmulator) -> None:
    ext = ppe_slacklog.Slack(
        CHANNEL, msg="{default}", token=emu.token, base_url=emu.base_url
    )
    twin = copy.deepcopy(ext)
    manager = make_manager(max_epochs=1)
    manager.extend(twin)
    run_training(manager)
    assert len(emu.messages(CHANNEL)) == 3


def test_pickled_webhook_extension_holds_no_url(
    emu: SlackEmulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    url = emu.webhook_url("alerts")
    ext = ppe_slacklog.SlackWebhook(url, msg="{default}")
    assert _hook_secret(url) not in _shown(ext)
    data = pickle.dumps(ext)
    assert _hook_secret(url).encode() not in data
    with pytest.warns(UserWarning, match="SLACK_WEBHOOK_URL is not set"):
        saved, _ = _torch_round_trip(ext)
    assert _hook_secret(url).encode() not in saved

    monkeypatch.setenv("SLACK_WEBHOOK_URL", url)
    loaded = pickle.loads(data)
    manager = make_manager(max_epochs=1)
    manager.extend(loaded)
    run_training(manager)
    texts = [m.text for m in emu.top_level("alerts")]
    assert texts[1] == "Epoch #1" and len(texts) == 3


@pytest.mark.parametrize("kind", ["token", "webhook"])
def test_handlers_refuse_pickling_without_showing_the_secret(
    emu: SlackEmulator, kind: str
) -> None:
    handler: SlackHandler
    if kind == "token":
        handler = SlackHandler(CHANNEL, token=emu.token, base_url=emu.base_url)
        secret = emu.token
    else:
        url = emu.webhook_url("alerts")
        handler = SlackWebhookHandler(url)
        secret = _hook_secret(url)
    assert secret not in _shown(handler)
    logging.getLogger("myproject").addHandler(handler)
    logging.getLogger("myproject").warning("before")
    for dump in (pickle.dumps, lambda h: torch.save(h, io.BytesIO())):
        with pytest.raises(TypeError, match="cannot be pickled") as raised:
            dump(handler)
        assert secret not in str(raised.value)
    with pytest.raises(TypeError, match="cannot be pickled"):
        copy.deepcopy(handler)
    # Still working after the refusals.
    logging.getLogger("myproject").warning("after")
    handler.flush()
    shown = "\n".join(m.text for m in emu.messages())
    assert "before" in shown and "after" in shown
