"""Runs that do not simply start and finish: interrupted, resumed from snapshots.

Each run is a real child process (``child_training.py``) stopped by a real
signal, ``sys.exit`` or an exception, posting to the emulator over HTTP.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
from conftest import is_chart, make_manager, run_training

import ppe_slacklog
from ppe_slacklog.testing import EmulatedMessage, SlackEmulator

CHANNEL = "experiment-progress"
CHILD = Path(__file__).with_name("child_training.py")


def _spawn(emu: SlackEmulator, mode: str, **env: str) -> subprocess.Popen[str]:
    full_env = {
        **os.environ,
        "SLACK_BOT_TOKEN": emu.token,
        "SLACK_API_URL": emu.base_url,
        **env,
    }
    return subprocess.Popen(
        [sys.executable, str(CHILD), mode],
        env=full_env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _run(
    emu: SlackEmulator, mode: str, send: int | None = None, **env: str
) -> tuple[int, str, float]:
    """Runs the child; sends ``send`` once it is ready.

    Returns:
        Exit status, stderr, and seconds from the signal to the exit.
    """
    child = _spawn(emu, mode, **env)
    sent = time.monotonic()
    try:
        assert child.stdout is not None
        if send is not None:
            assert child.stdout.readline().strip() == "ready"
            sent = time.monotonic()
            child.send_signal(send)
        _, err = child.communicate(timeout=90)
    finally:
        if child.poll() is None:
            child.kill()
    return child.returncode, err, time.monotonic() - sent


def _thread(emu: SlackEmulator, channel: str = CHANNEL) -> list[EmulatedMessage]:
    top = emu.top_level(channel)
    assert len(top) == 1, [m.text for m in top]
    # The live card's chart is not one of the run's messages.
    return [m for m in emu.thread(channel, top[0].ts) if not is_chart(m)]


def _interrupted(thread: list[EmulatedMessage]) -> list[EmulatedMessage]:
    return [m for m in thread if "Training interrupted" in m.text]


def test_sigterm_posts_one_interrupted_message(emu: SlackEmulator) -> None:
    status, err, _ = _run(emu, "wait", send=signal.SIGTERM)
    assert status == 128 + signal.SIGTERM, err
    thread = _thread(emu)
    assert "Training started" in thread[0].text
    (message,) = _interrupted(thread)
    assert message is thread[-1]
    assert "SIGTERM received" in message.text
    assert "Stopped at epoch 2, iteration 1" in message.text  # 11 or 12
    assert "after 0:00:" in message.text
    assert message.reply_broadcast  # seen in the channel, not only the thread
    assert not any("Training finished" in m.text for m in thread)
    # The live card shows it too, delivered before the process exited.
    card = emu.message(CHANNEL, thread[0].ts)
    assert card.blocks[0]["text"]["text"].startswith("⚠️ Interrupted · epoch 2")
    assert "SIGTERM received" in str(card.blocks)


def test_keyboard_interrupt_posts_interrupted(emu: SlackEmulator) -> None:
    status, err, _ = _run(emu, "wait", send=signal.SIGINT)
    assert status != 0
    assert "KeyboardInterrupt" in err
    (message,) = _interrupted(_thread(emu))
    assert "KeyboardInterrupt" in message.text


def test_sys_exit_posts_interrupted(emu: SlackEmulator) -> None:
    status, _, _ = _run(emu, "exit")
    assert status == 3
    (message,) = _interrupted(_thread(emu))
    assert "the process exited" in message.text
    assert "epoch 2, iteration 11" in message.text


@pytest.mark.parametrize("mode", ["finish", "fail"])
def test_runs_that_end_properly_post_nothing_extra(
    emu: SlackEmulator, mode: str
) -> None:
    status, err, _ = _run(emu, mode)
    thread = _thread(emu)
    assert _interrupted(thread) == []
    if mode == "finish":
        assert status == 0, err
        assert "Training finished" in thread[-1].text
    else:
        assert status == 1
        assert "RuntimeError: child failed" in thread[-1].text


def _wait_for_line(child: subprocess.Popen[str], line: str) -> None:
    assert child.stdout is not None
    while (got := child.stdout.readline()) != f"{line}\n":
        assert got, f"the child ended before printing {line!r}"


@pytest.mark.parametrize(("mode", "event"), [("finish", "end"), ("fail", "error")])
def test_sigterm_during_the_final_flush_finishes_it(
    emu: SlackEmulator, mode: str, event: str
) -> None:
    # A slow Slack: finalize (on_error) is still flushing when SIGTERM comes.
    emu.set_latency(0.8)
    child = _spawn(emu, mode, CHILD_SAY="1")
    try:
        _wait_for_line(child, f"{event} logged")
        child.send_signal(signal.SIGTERM)
        _, err = child.communicate(timeout=90)
    finally:
        if child.poll() is None:
            child.kill()
    assert child.returncode == 128 + signal.SIGTERM, err
    texts = [m.text for m in _thread(emu)]
    lines = "\n".join(texts[1:-1]).splitlines()
    if mode == "finish":
        # The run had finished training: the end message says so, and
        # nothing claims it was interrupted.
        assert [t.split(" loss")[0] for t in lines] == [
            f"epoch {n}" for n in (1, 2, 3, 4)
        ]
        assert "Training finished" in texts[-1]
    else:
        assert [t.split(" loss")[0] for t in lines] == ["epoch 1", "epoch 2"]
        assert "RuntimeError: child failed" in texts[-1]
    assert _interrupted(_thread(emu)) == []


def test_second_sigterm_during_the_exit_flush_finishes_it(emu: SlackEmulator) -> None:
    # Under srun + torchrun a rank gets SIGTERM twice: from the scheduler and
    # from torchrun. The second must not cut short the flush of the first.
    emu.set_latency(0.8)
    child = _spawn(emu, "wait", CHILD_SAY="1")
    try:
        _wait_for_line(child, "ready")
        child.send_signal(signal.SIGTERM)
        _wait_for_line(child, "interrupted logged")
        child.send_signal(signal.SIGTERM)
        _, err = child.communicate(timeout=90)
    finally:
        if child.poll() is None:
            child.kill()
    assert child.returncode == 128 + signal.SIGTERM, err
    thread = _thread(emu)
    (message,) = _interrupted(thread)
    assert message is thread[-1]
    assert "SIGTERM received" in message.text
    lines = "\n".join(m.text for m in thread[1:-1]).splitlines()
    assert [t.split(" loss")[0] for t in lines] == ["epoch 1", "epoch 2"]


def test_exit_with_slack_down_is_bounded(emu: SlackEmulator) -> None:
    emu.set_outage(True)
    # The child's handler waits at most 1 s at exit; the subprocess timeout
    # of _run (60 s) is only a guard against hanging.
    status, err, _ = _run(emu, "wait", send=signal.SIGTERM, CHILD_FLUSH_TIMEOUT="1")
    assert status == 128 + signal.SIGTERM
    assert "could not be delivered within 1s" in err
    emu.set_outage(False)
    assert emu.messages(CHANNEL) == []


def test_preempted_run_resumes_in_the_same_thread(
    emu: SlackEmulator, tmp_path: Path
) -> None:
    out = str(tmp_path / "run")
    status, err, _ = _run(emu, "wait", send=signal.SIGTERM, CHILD_OUT=out)
    assert status == 128 + signal.SIGTERM, err
    status, err, _ = _run(emu, "finish", CHILD_OUT=out)
    assert status == 0, err
    thread = _thread(emu)  # still one top-level message: one thread
    texts = [m.text for m in thread]
    resumed = [t for t in texts if "Training resumed" in t]
    assert len(resumed) == 1
    assert "resumed from epoch 2, iteration 10!" in resumed[0]
    assert texts.index(resumed[0]) > texts.index(_interrupted(thread)[0].text)
    assert "Training finished" in texts[-1]
    assert texts[-2].startswith("epoch 4 loss")


def test_resume_on_another_channel_starts_a_new_thread(
    emu: SlackEmulator, tmp_path: Path
) -> None:
    out = str(tmp_path / "run")
    status, _, _ = _run(emu, "wait", send=signal.SIGTERM, CHILD_OUT=out)
    status, err, _ = _run(emu, "finish", CHILD_OUT=out, CHILD_CHANNEL="alerts")
    assert status == 0, err
    assert len(_interrupted(_thread(emu, CHANNEL))) == 1
    thread = _thread(emu, "alerts")
    assert "Training resumed from epoch 2, iteration 10!" in thread[0].text
    assert "Training finished" in thread[-1].text


def test_state_dict_carries_the_thread(slack_env: SlackEmulator) -> None:
    emu = slack_env
    manager = make_manager(max_epochs=1)
    ext = ppe_slacklog.Slack(CHANNEL)
    manager.extend(ext)
    with manager.run_iteration():
        pass
    state = ext.state_dict()
    (parent,) = emu.top_level(CHANNEL)
    assert state == {"run_id": ext.run_id, "threads": {CHANNEL: parent.ts}}
    manager.finalize()


def test_snapshot_without_a_thread_starts_a_new_one(slack_env: SlackEmulator) -> None:
    emu = slack_env
    manager = make_manager(max_epochs=2)
    ext = ppe_slacklog.Slack(CHANNEL)
    manager.extend(ext)
    ext.load_state_dict({"run_id": "old-run"})  # an old snapshot: no threads
    manager.iteration = 2
    run_training(manager)
    thread = _thread(emu)
    assert "Training resumed from epoch 1, iteration 2!" in thread[0].text
    assert ext.run_id == "old-run"


def test_snapshot_of_a_deleted_thread_starts_a_new_one(
    slack_env: SlackEmulator,
) -> None:
    emu = slack_env
    manager = make_manager(max_epochs=1)
    ext = ppe_slacklog.Slack(CHANNEL)
    manager.extend(ext)
    ext.load_state_dict({"run_id": "r", "threads": {CHANNEL: "1000000000.000001"}})
    run_training(manager)
    thread = _thread(emu)
    assert "Training resumed" in thread[0].text
    assert "Training finished" in thread[-1].text


def test_exception_hooks_chained_by_others_do_not_loop(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from ppe_slacklog import _interrupts

    seen: list[str] = []
    monkeypatch.setattr(sys, "excepthook", sys.excepthook)
    first, second = object(), object()
    _interrupts.watch(first, seen.append)
    ours = sys.excepthook

    def crash_reporter(*exc_info: object) -> None:  # a library chaining to ours
        seen.append("reporter")
        ours(*exc_info)  # type: ignore[arg-type]

    sys.excepthook = crash_reporter
    _interrupts.unwatch(first)
    _interrupts.watch(second, seen.append)
    try:
        monkeypatch.setattr(_interrupts, "_previous_excepthook", lambda *a: None)
        sys.excepthook(KeyboardInterrupt, KeyboardInterrupt(), None)
    finally:
        _interrupts.unwatch(second)
    assert seen == ["reporter"]
    assert _interrupts._reason is None  # forgotten with the run


def test_snapshot_loaded_after_the_start_continues_the_saved_thread(
    slack_env: SlackEmulator,
) -> None:
    emu = slack_env
    first = make_manager(max_epochs=1)
    ext = ppe_slacklog.Slack(CHANNEL, msg="epoch {manager.epoch}")
    first.extend(ext)
    run_training(first)
    state = ext.state_dict()
    second = make_manager(max_epochs=2)
    late = ppe_slacklog.Slack(CHANNEL, msg="epoch {manager.epoch}")
    second.extend(late)
    with second.run_iteration():
        pass
    late.load_state_dict(state)  # after the start message went out
    run_training(second)
    (saved, started) = emu.top_level(CHANNEL)
    texts = [m.text for m in emu.thread(CHANNEL, saved.ts)]
    finished = [i for i, t in enumerate(texts) if "Training finished" in t]
    assert len(finished) == 2 and finished[-1] == len(texts) - 1
    # The second run's progress follows the first run's end, in that thread.
    later = "\n".join(texts[finished[0] + 1 : -1]).splitlines()
    assert later == ["epoch 1", "epoch 2"]
    assert len(emu.thread(CHANNEL, started.ts)) == 1  # only that start message


def _python(emu: SlackEmulator, code: str) -> subprocess.Popen[str]:
    env = {**os.environ, "SLACK_BOT_TOKEN": emu.token, "SLACK_API_URL": emu.base_url}
    return subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(code)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def test_error_flushed_into_an_outage_still_goes_out_at_exit(
    emu: SlackEmulator,
) -> None:
    emu.set_outage(True)
    child = _python(
        emu,
        """
        import logging, time
        from ppe_slacklog import SlackHandler
        log = logging.getLogger("myproject")
        handler = SlackHandler("experiment-progress", flush_timeout=2)
        log.addHandler(handler)
        log.error("the error that matters")
        handler.flush()  # times out: Slack is down
        print("flushed", flush=True)
        time.sleep(0.5)  # Slack comes back; the process exits
        """,
    )
    assert child.stdout is not None
    assert child.stdout.readline().strip() == "flushed"
    emu.set_outage(False)
    _, err = child.communicate(timeout=60)
    assert child.returncode == 0, err
    texts = [m.text for m in emu.messages(CHANNEL)]
    assert texts == ["❌ *myproject* the error that matters"]


def test_an_idle_handler_does_not_stretch_the_exit(emu: SlackEmulator) -> None:
    emu.set_outage(True)
    started = time.monotonic()
    child = _python(
        emu,
        """
        import logging
        from ppe_slacklog import SlackHandler
        idle = SlackHandler("alerts", flush_timeout=60)
        busy = SlackHandler("experiment-progress", flush_timeout=2)
        logging.getLogger("myproject").addHandler(busy)
        logging.getLogger("myproject").warning("lost in the outage")
        print("logged", flush=True)
        """,
    )
    _, err = child.communicate(timeout=90)
    took = time.monotonic() - started
    assert child.returncode == 0, err
    assert "could not be delivered within 2s" in err
    # The bound is the busy handler's 2 s, not the idle one's 60 s; the
    # margin covers the interpreter's start (torch is not imported here).
    assert took < 2 + 25, took


def test_records_logged_by_a_later_exit_hook_are_delivered(
    emu: SlackEmulator,
) -> None:
    emu.set_latency(0.3)
    child = _python(
        emu,
        """
        import atexit, logging
        log = logging.getLogger("myproject")
        # Registered before ppe_slacklog is imported: it runs after its hook.
        atexit.register(lambda: log.warning("job summary logged at exit"))
        from ppe_slacklog import SlackHandler
        log.addHandler(SlackHandler("experiment-progress", flush_timeout=10))
        log.warning("during the run")
        """,
    )
    _, err = child.communicate(timeout=60)
    assert child.returncode == 0, err
    texts = [m.text for m in emu.messages(CHANNEL)]
    assert len(texts) == 2 and "job summary logged at exit" in texts[1]


def test_exception_hook_in_a_forked_child_does_not_loop(emu: SlackEmulator) -> None:
    child = _python(
        emu,
        """
        import os, sys
        from ppe_slacklog import _interrupts
        _interrupts.watch(1, lambda reason: None)
        ours = sys.excepthook
        def reporter(*exc_info):
            print("reporter", flush=True)
            ours(*exc_info)
        sys.excepthook = reporter
        pid = os.fork()
        if pid == 0:
            _interrupts.watch(2, lambda reason: None)
            sys.excepthook(ValueError, ValueError("in the child"), None)
            os._exit(0)
        os.waitpid(pid, 0)
        """,
    )
    out, err = child.communicate(timeout=60)
    assert out.split() == ["reporter"]
    assert "RecursionError" not in err and "in the child" in err
