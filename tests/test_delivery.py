"""The delivery engine: order, pacing, batching, faults, bounds, exit, fork."""

from __future__ import annotations

import logging
import os
import warnings
from pathlib import Path
from typing import Any

import pytest
from conftest import make_manager, run_python, run_training, start_text

import ppe_slacklog
from ppe_slacklog import SlackDeliveryWarning, SlackHandler
from ppe_slacklog.events import ManagerSnapshot, event_extra
from ppe_slacklog.testing import SlackEmulator

CHANNEL = "experiment-progress"


def _handler(emu: SlackEmulator, **kw: Any) -> SlackHandler:
    handler = SlackHandler(CHANNEL, emu.token, base_url=emu.base_url, **kw)
    logger = logging.getLogger("myproject")
    logger.addHandler(handler)
    logger.setLevel(logging.DEBUG)
    return handler


def _training_handler(emu: SlackEmulator, **kw: Any) -> SlackHandler:
    handler = SlackHandler(CHANNEL, emu.token, base_url=emu.base_url, **kw)
    logger = logging.getLogger("ppe_slacklog.training")
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    return handler


def _lines(emu: SlackEmulator) -> list[str]:
    """Every line posted to the channel, in order, level markers removed."""
    lines: list[str] = []
    for message in emu.messages(CHANNEL):
        for line in message.text.split("\n"):
            lines.append(line.split("* ", 1)[1] if "*myproject*" in line else line)
    return lines


def _trigger(logger: logging.Logger, run_id: str, epoch: int, **kw: Any) -> None:
    extra = event_extra(
        kind="trigger",
        run_id=run_id,
        snapshot=ManagerSnapshot(epoch=epoch),
        context=None,
        template="epoch {manager.epoch}",
        **kw,
    )
    logger.info("epoch %d", epoch, extra=extra)


def test_emit_never_raises_into_the_caller(emu: SlackEmulator) -> None:
    class Unprintable:
        def __str__(self) -> str:
            raise RuntimeError("no str")

    handler = _handler(emu)
    errors: list[logging.LogRecord] = []
    handler.handleError = errors.append  # type: ignore[method-assign]
    record = logging.makeLogRecord(
        {"name": "myproject", "levelno": 30, "msg": Unprintable()}
    )
    handler.handle(record)  # returns normally, and the record is still sent
    assert errors == []
    assert handler.drain(5)
    assert _lines(emu) == ["[unprintable: message]"]


# Unpaced (rate_limit=None) on purpose: needs a Slack without rate limits.
@pytest.mark.slack_emulator(rate_limits=False)
def test_order_is_kept_under_latency(emu: SlackEmulator) -> None:
    emu.set_latency(0.02)
    handler = _handler(emu, rate_limit=None)
    for i in range(40):
        logging.getLogger("myproject").warning("message %02d", i)
    assert handler.drain(timeout=20.0)
    assert _lines(emu) == [f"message {i:02d}" for i in range(40)]


# The order of the library's requests: with Slack's asynchronous shares the
# file message may come after epoch 3 (test_slack_harsh.py), so a Slack that
# shares at once.
@pytest.mark.slack_emulator(share_delay=0)
def test_thread_parent_first_and_files_next_to_their_message(
    emu: SlackEmulator, tmp_path: Path
) -> None:
    plot = tmp_path / "p.png"
    plot.write_bytes(b"img")
    handler = _training_handler(emu)
    logger = logging.getLogger("ppe_slacklog.training")
    _trigger(logger, "run", 1)
    _trigger(logger, "run", 2, filenames=[str(plot)])
    _trigger(logger, "run", 3)
    assert handler.drain(timeout=10.0)
    parent, *replies = emu.messages(CHANNEL)
    assert parent.text == "epoch 1" and parent.thread_ts is None
    assert [(m.text, [f.name for f in m.files]) for m in replies] == [
        ("epoch 2", ["p.png"]),
        ("epoch 3", []),
    ]
    assert all(m.thread_ts == parent.ts for m in replies)


def test_pacing_avoids_429_and_batches_the_backlog(emu: SlackEmulator) -> None:
    emu.rate_limit("chat.postMessage", per_second=1.0, burst=3)
    handler = _handler(emu)
    for i in range(30):
        logging.getLogger("myproject").info("record %02d", i)
    assert handler.drain(timeout=20.0)
    assert _lines(emu) == [f"record {i:02d}" for i in range(30)]
    assert not any(c.status == 429 for c in emu.calls)
    assert len(emu.messages(CHANNEL)) < 30  # the backlog shared messages
    assert handler.stats.rate_limited == 0


def test_429_waits_retry_after_and_resends(emu: SlackEmulator) -> None:
    emu.rate_limit("chat.postMessage", per_second=2.0, burst=1)
    handler = _handler(emu, rate_limit=None)  # no pacing: provoke 429s
    for i in range(4):
        logging.getLogger("myproject").warning("burst %d", i)
    assert handler.drain(timeout=30.0)
    assert _lines(emu) == [f"burst {i}" for i in range(4)]
    assert handler.stats.rate_limited >= 1
    assert handler.stats.retries >= handler.stats.rate_limited


def test_errors_stay_their_own_message(emu: SlackEmulator) -> None:
    emu.set_outage(True)
    handler = _handler(emu)
    log = logging.getLogger("myproject")
    log.info("a")
    log.info("b")
    log.error("failure")
    log.info("c")
    log.info("d")
    emu.set_outage(False)
    assert handler.drain(timeout=30.0)
    texts = [m.text for m in emu.messages(CHANNEL)]
    assert "❌ *myproject* failure" in texts
    assert _lines(emu) == ["a", "b", "failure", "c", "d"]


def test_batches_stay_under_the_text_limit(emu: SlackEmulator) -> None:
    emu.set_outage(True)
    handler = _handler(emu, max_message_chars=200, rate_limit=50.0, burst=1)
    for i in range(40):
        logging.getLogger("myproject").info("line %02d %s", i, "x" * 20)
    emu.set_outage(False)
    assert handler.drain(timeout=30.0)
    texts = [m.text for m in emu.messages(CHANNEL)]
    assert all(len(t) <= 200 for t in texts)
    assert len(texts) < 40  # batched...
    assert _lines(emu) == [f"line {i:02d} {'x' * 20}" for i in range(40)]  # ...in order


def test_server_errors_without_duplicates(emu: SlackEmulator) -> None:
    emu.fail_after_accept(1, status=500)
    handler = _handler(emu)
    logging.getLogger("myproject").warning("stored, answer lost")
    assert handler.drain(timeout=20.0)
    assert _lines(emu) == ["stored, answer lost"]
    assert handler.stats.retries == 1 and handler.stats.sent == 1


def test_timeouts_without_duplicates(emu: SlackEmulator) -> None:
    emu.delay_after_accept(1, 3.0)
    handler = _handler(emu, request_timeout=1.0)
    logging.getLogger("myproject").warning("slow answer")
    assert handler.drain(timeout=20.0)
    assert _lines(emu) == ["slow answer"]


def test_dropped_connections_are_retried(emu: SlackEmulator) -> None:
    emu.drop_connections(2, method="chat.postMessage")
    handler = _handler(emu)
    logging.getLogger("myproject").warning("reset twice")
    assert handler.drain(timeout=20.0)
    assert _lines(emu) == ["reset twice"]


def test_without_history_scope_a_retry_posts_again(emu: SlackEmulator) -> None:
    # Slack cannot be asked: the record is delivered (possibly twice), not lost.
    limited = SlackEmulator(scopes=("chat:write", "channels:read")).start()
    try:
        limited.fail_after_accept(1, status=503, method="chat.postMessage")
        handler = _handler(limited)
        with pytest.warns(SlackDeliveryWarning, match="channels:history"):
            logging.getLogger("myproject").warning("delivered")
            assert handler.drain(timeout=20.0)
        # Slack cannot be asked: sent again, so twice, and the user was told.
        assert [m.text for m in limited.messages(CHANNEL)] == [
            "⚠️ *myproject* delivered"
        ] * 2
    finally:
        limited.stop()


def test_permanent_errors_are_not_retried_forever(emu: SlackEmulator) -> None:
    handler = SlackHandler("nowhere", emu.token, base_url=emu.base_url)
    logging.getLogger("myproject").addHandler(handler)
    with pytest.warns(SlackDeliveryWarning, match="channel_not_found") as caught:
        for i in range(3):
            logging.getLogger("myproject").warning("w%d", i)
        assert handler.drain(timeout=10.0)
    assert handler.stats.failed >= 1
    assert handler.stats.api_calls <= 3
    assert len([w for w in caught if "channel_not_found" in str(w.message)]) == 1


def test_bounded_queue_drops_non_essential_first_and_says_so(
    emu: SlackEmulator,
) -> None:
    emu.set_outage(True)
    handler = _handler(emu, max_queue_records=10)
    log = logging.getLogger("myproject")
    log.warning("kept warning 1")
    for i in range(100):
        log.info("info %03d", i)
    log.warning("kept warning 2")
    assert handler.pending <= 11
    emu.set_outage(False)
    assert handler.drain(timeout=30.0)
    lines = _lines(emu)
    assert "kept warning 1" in lines and "kept warning 2" in lines
    # Whether the first warning was already in flight decides one more drop.
    dropped = handler.stats.dropped
    assert dropped in (91, 92)
    infos = [line for line in lines if line.startswith("info")]
    assert infos == [f"info {i:03d}" for i in range(dropped, 100)]
    notices = [line for line in lines if "dropped" in line]
    assert len(notices) == 1
    assert f"{dropped} log records" in notices[0]


def test_start_end_error_are_never_dropped(emu: SlackEmulator) -> None:
    emu.set_outage(True)
    handler = _training_handler(emu, max_queue_records=3)
    manager = make_manager(max_epochs=20, iters_per_epoch=1)
    manager.extend(ppe_slacklog.Slack(CHANNEL, msg="ep {manager.epoch}"))
    handler.flush_timeout = 0.05  # finalize must not wait for the outage
    run_training(manager)
    emu.set_outage(False)
    assert handler.drain(timeout=30.0)
    texts = [m.text for m in emu.messages(CHANNEL)]
    card = emu.messages(CHANNEL)[0]
    assert start_text(card).startswith("🏃") and "✅ *Training finished!" in texts[-1]
    # The live card reached its final state too, after the outage.
    assert card.blocks is not None
    assert card.blocks[0]["text"]["text"] == "✅ Finished · epoch 20/20"
    assert any("dropped" in t for t in texts)
    assert "ep 20" in "\n".join(texts)


def test_storm_of_identical_messages_collapses(emu: SlackEmulator) -> None:
    emu.set_outage(True)
    handler = _handler(emu)
    log = logging.getLogger("myproject")
    log.warning("first")
    for _ in range(500):
        log.warning("GPU temperature high")
    log.warning("last")
    emu.set_outage(False)
    assert handler.drain(timeout=30.0)
    lines = _lines(emu)
    storm = [line for line in lines if "GPU temperature" in line]
    total = sum(int(s.rsplit("×", 1)[1].rstrip(")")) if "×" in s else 1 for s in storm)
    assert total == 500 and len(storm) <= 3
    assert lines[0] == "first" and lines[-1] == "last"


def test_captured_warnings_do_not_loop(emu: SlackEmulator, tmp_path: Path) -> None:
    handler = SlackHandler(CHANNEL, emu.token, base_url=emu.base_url)
    root = logging.getLogger()
    root.addHandler(handler)
    root.setLevel(logging.INFO)
    logging.captureWarnings(True)
    try:
        logger = logging.getLogger("ppe_slacklog.training")
        _trigger(logger, "r", 1, filenames=[str(tmp_path / "missing.png")])
        bad = SlackHandler("nowhere", emu.token, base_url=emu.base_url)
        logging.getLogger("myproject").addHandler(bad)
        logging.getLogger("myproject").warning("to nowhere")
        assert bad.drain(timeout=10.0)
        assert handler.drain(timeout=10.0)
    finally:
        logging.captureWarnings(False)
    texts = [m.text for m in emu.messages(CHANNEL)]
    # The event (with its note) and the project warning; no diagnostics.
    assert len(texts) == 2
    assert texts[0].startswith("epoch 1\n⚠️ Could not attach")
    assert not any("ppe_slacklog" in t for t in texts)


def test_exit_delivers_pending_messages(emu: SlackEmulator) -> None:
    emu.set_latency(0.2)
    result = run_python(
        emu,
        """
        import logging
        from ppe_slacklog import SlackHandler
        log = logging.getLogger("myproject")
        log.addHandler(SlackHandler("experiment-progress"))
        for i in range(3):
            log.warning("at exit %d", i)
        """,
    )
    assert result.returncode == 0, result.stderr
    assert _lines(emu) == [f"at exit {i}" for i in range(3)]


def test_exit_with_slack_down_is_bounded_and_says_so(emu: SlackEmulator) -> None:
    emu.set_outage(True)
    result = run_python(
        emu,
        """
        import logging
        from ppe_slacklog import SlackHandler
        log = logging.getLogger("myproject")
        log.addHandler(SlackHandler("experiment-progress", flush_timeout=1.0))
        log.warning("never delivered")
        """,
    )
    assert result.returncode == 0
    assert result.stderr.count("could not be delivered within") == 1
    assert emu.messages(CHANNEL) == []


def test_forked_child_does_not_repost_the_parents_queue(emu: SlackEmulator) -> None:
    emu.set_latency(0.1)
    handler = _handler(emu, rate_limit=None)
    log = logging.getLogger("myproject")
    for i in range(5):
        log.warning("parent %d", i)
    for _ in range(5):  # fork while the sender is busy, repeatedly
        pid = os.fork()
        if pid == 0:  # pragma: no cover - runs in the child
            code = 0
            try:
                log.warning("child %d", os.getpid())
                code = 0 if handler.drain(timeout=10.0) else 3
            except BaseException:
                code = 4
            os._exit(code)
        _, status = os.waitpid(pid, 0)
        assert os.waitstatus_to_exitcode(status) == 0
    assert handler.drain(timeout=20.0)
    lines = _lines(emu)
    assert [line for line in lines if line.startswith("parent")] == [
        f"parent {i}" for i in range(5)
    ]
    assert len([line for line in lines if line.startswith("child")]) == 5


def test_dataloader_workers_do_not_duplicate(slack_env: SlackEmulator) -> None:
    import pytorch_pfn_extras as ppe
    import torch

    data = torch.utils.data.TensorDataset(torch.randn(16, 2), torch.randn(16, 1))
    loader = torch.utils.data.DataLoader(data, batch_size=4, num_workers=2)
    manager = make_manager(max_epochs=2, iters_per_epoch=len(loader))
    manager.extend(ppe_slacklog.Slack(CHANNEL, msg="ep {manager.epoch}"))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # fork + threads
        while not manager.stop_trigger:
            for x, _ in loader:
                with manager.run_iteration():
                    ppe.reporting.report({"x": float(x.sum())})
    texts = "\n".join(m.text for m in slack_env.messages(CHANNEL))
    assert texts.count("ep 1") == 1 and texts.count("ep 2") == 1
    assert texts.count("Training started") == 1
    assert texts.count("Training finished") == 1


def test_counters_tell_what_happened(emu: SlackEmulator) -> None:
    emu.fail_next(1, status=502, method="chat.postMessage")
    handler = _handler(emu)
    logging.getLogger("myproject").warning("counted")
    assert handler.drain(timeout=20.0)
    stats = handler.stats
    assert (stats.queued, stats.sent, stats.failed, stats.dropped) == (1, 1, 0, 0)
    assert stats.retries == 1
    assert stats.api_calls >= 2


def test_file_too_big_for_the_queue_is_named_not_dropped(
    emu: SlackEmulator, tmp_path: Path
) -> None:
    big = tmp_path / "huge.png"
    big.write_bytes(b"x" * 3000)
    handler = _training_handler(emu, max_queue_bytes=4000)
    logger = logging.getLogger("ppe_slacklog.training")
    with pytest.warns(SlackDeliveryWarning, match="raise max_queue_bytes"):
        _trigger(logger, "run", 1, filenames=[str(big)])
    assert handler.drain(timeout=10.0)
    (message,) = emu.messages(CHANNEL)
    assert message.text.startswith("epoch 1\n⚠️ Could not attach")
    assert "raise max_queue_bytes" in message.text
    assert handler.stats.dropped == 0


def test_upload_whose_answer_was_lost_is_not_repeated(
    emu: SlackEmulator, tmp_path: Path
) -> None:
    plot = tmp_path / "p.png"
    plot.write_bytes(b"img")
    emu.fail_after_accept(1, status=500, method="files.completeUploadExternal")
    handler = _training_handler(emu)
    logger = logging.getLogger("ppe_slacklog.training")
    _trigger(logger, "run", 1)
    _trigger(logger, "run", 2, filenames=[str(plot)])
    assert handler.drain(timeout=20.0)
    assert [f.name for f in emu.files] == ["p.png"]
    assert handler.stats.retries == 1


def test_sender_survives_warnings_as_errors(emu: SlackEmulator) -> None:
    handler = SlackHandler("nowhere", emu.token, base_url=emu.base_url)
    logging.getLogger("myproject").addHandler(handler)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        logging.getLogger("myproject").warning("first")
        logging.getLogger("myproject").warning("second")
        assert handler.drain(timeout=10.0)
        handler.close()
    assert handler.stats.failed == 2


def test_counters_count_records_through_collapse(emu: SlackEmulator) -> None:
    emu.set_outage(True)
    handler = _handler(emu, max_queue_records=5)
    for i in range(40):
        logging.getLogger("myproject").info("same" if i % 2 else f"other {i}")
    emu.set_outage(False)
    assert handler.drain(timeout=30.0)
    stats = handler.stats
    assert stats.queued == 40
    assert stats.sent + stats.dropped == 40


def test_retried_upload_is_not_mistaken_for_last_epochs(
    emu: SlackEmulator, tmp_path: Path
) -> None:
    plot = tmp_path / "loss.png"
    handler = _training_handler(emu)
    logger = logging.getLogger("ppe_slacklog.training")
    plot.write_bytes(b"epoch one")
    _trigger(logger, "run", 1, filenames=[str(plot)])
    assert handler.drain(timeout=10.0)
    plot.write_bytes(b"epoch two!")
    emu.fail_after_accept(1, status=500, method="files.completeUploadExternal")
    _trigger(logger, "run", 2, filenames=[str(plot)])
    emu.fail_next(1, status=500, method="files.getUploadURLExternal")
    _trigger(logger, "run", 3, filenames=[str(plot)])
    assert handler.drain(timeout=20.0)
    assert [(f.initial_comment, f.content) for f in emu.files] == [
        (None, b"epoch one"),
        ("epoch 2", b"epoch two!"),
        ("epoch 3", b"epoch two!"),
    ]
