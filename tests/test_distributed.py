"""A real two-process ``torchrun`` job (gloo on CPU) reporting to one thread."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from ppe_slacklog.testing import EmulatedMessage, SlackEmulator

SCRIPT = Path(__file__).with_name("dist_training.py")
HOST = socket.gethostname()


def _torchrun(
    emu: SlackEmulator, mode: str, **extra: str
) -> subprocess.CompletedProcess[str]:
    env = {
        **os.environ,
        "SLACK_BOT_TOKEN": emu.token,
        "SLACK_API_URL": emu.base_url,
        "OMP_NUM_THREADS": "1",
        **extra,
    }
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone"]
    command += ["--nproc-per-node", "2", "--monitor-interval", "0.1"]
    return subprocess.run(
        [*command, str(SCRIPT), mode],
        env=env,
        capture_output=True,
        text=True,
        timeout=240,
    )


def _thread(emu: SlackEmulator, channel: str) -> list[EmulatedMessage]:
    top = emu.top_level(channel)
    assert len(top) == 1, [m.text for m in top]  # one thread per job
    return emu.thread(channel, top[0].ts)


@pytest.fixture(scope="module")
def finished_job() -> tuple[SlackEmulator, subprocess.CompletedProcess[str]]:
    with SlackEmulator() as emu:
        yield emu, _torchrun(emu, "ok")


@pytest.fixture(scope="module")
def failed_job() -> tuple[SlackEmulator, subprocess.CompletedProcess[str]]:
    with SlackEmulator() as emu:
        yield emu, _torchrun(emu, "fail")


def test_one_start_one_end_one_thread(finished_job) -> None:  # type: ignore[no-untyped-def]
    emu, result = finished_job
    assert result.returncode == 0, result.stderr[-3000:]
    texts = [m.text for m in _thread(emu, "experiment-progress")]
    assert len([t for t in texts if "Training started" in t]) == 1
    assert len([t for t in texts if "Training finished" in t]) == 1
    # Trigger messages from rank 0 only, by default.
    assert texts[1:3] == ["epoch 1", "epoch 2"]
    assert len(texts) == 4


def test_trigger_messages_from_every_rank_when_asked(finished_job) -> None:  # type: ignore[no-untyped-def]
    emu, _ = finished_job
    texts = [m.text for m in _thread(emu, "alerts")]
    # Start and end from rank 0 still; the other rank's messages say so.
    assert len([t for t in texts if "Training started" in t]) == 1
    assert len([t for t in texts if "Training finished" in t]) == 1
    from_rank_1 = [t for t in texts if t.startswith(f"`rank 1 of 2 on {HOST}`")]
    assert sorted(t.splitlines()[-1] for t in from_rank_1) == ["epoch 1", "epoch 2"]
    assert sorted(t for t in texts if t.startswith("epoch")) == ["epoch 1", "epoch 2"]


def test_a_failing_rank_is_named_in_the_thread(failed_job) -> None:  # type: ignore[no-untyped-def]
    emu, result = failed_job
    assert result.returncode != 0
    thread = _thread(emu, "experiment-progress")
    errors = [m for m in thread if "Error during training" in m.text]
    assert len(errors) == 1
    assert errors[0].text.startswith(f"`rank 1 of 2 on {HOST}`")
    assert "RuntimeError: rank 1 failed" in errors[0].text
    assert errors[0].reply_broadcast
    # torchrun stopped rank 0 when rank 1 died: it says so, once, and the
    # job did not hang on the dead rank.
    interrupted = [m for m in thread if "Training interrupted" in m.text]
    assert len(interrupted) == 1
    assert interrupted[0].text.startswith(f"`rank 0 of 2 on {HOST}`")
    assert "SIGTERM" in interrupted[0].text
    assert not any("Training finished" in m.text for m in thread)
    # One card for the job, rank 0's: the job failed, and how.
    card = emu.message("experiment-progress", thread[0].ts)
    assert card.blocks[0]["text"]["text"].startswith("❌ Failed")
    assert f"RuntimeError: rank 1 failed (rank 1 of 2 on {HOST})" in str(card.blocks)
    assert [m for m in thread if m.blocks] == [thread[0]]


def test_rank_0_stopped_during_its_final_flush_delivers_it(tmp_path: Path) -> None:
    with SlackEmulator() as emu:
        # Slack is slow: rank 0 is still flushing when rank 1 crashes and
        # torchrun stops rank 0 with SIGTERM.
        emu.set_latency(1.0)
        result = _torchrun(emu, "late", DIST_MARKER=str(tmp_path / "end-logged"))
        assert result.returncode != 0
        # The SIGTERM came before rank 0's training loop returned: in finalize.
        assert "rank 0 done" not in result.stdout, result.stderr[-3000:]
        texts = [m.text for m in _thread(emu, "experiment-progress")]
    assert "Training started" in texts[0]
    # A slow Slack may put the end message in the same message as the epochs.
    assert "\n".join(texts[1:]).splitlines()[:2] == ["epoch 1", "epoch 2"]
    # Training had finished: the end message, and no claim of an interruption.
    assert "Training finished" in texts[-1]
    assert not any("Training interrupted" in t for t in texts)
