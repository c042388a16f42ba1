"""Records logged in forked children: DataLoader workers, os.fork, multiprocessing.

Each scenario runs in a real child process that forks real grandchildren;
the grandchildren end the way DataLoader workers do (``os._exit``), so only
what reached the parent before that counts.
"""

from __future__ import annotations

import pytest
from conftest import run_python

from ppe_slacklog.testing import SlackEmulator

CHANNEL = "experiment-progress"


def _lines(emu: SlackEmulator) -> list[str]:
    """Every line posted to the channel (records may share a message)."""
    return [line for m in emu.messages(CHANNEL) for line in m.text.splitlines()]


def test_dataloader_worker_records_all_arrive(emu: SlackEmulator) -> None:
    result = run_python(
        emu,
        """
        import logging, os
        import pytorch_pfn_extras as ppe
        import torch
        from torch.utils.data import DataLoader, Dataset
        import ppe_slacklog

        # Paced like Slack wants: a worker's own sender would still be
        # waiting for its turn when the worker exits.
        slack = ppe_slacklog.SlackHandler("experiment-progress")
        for name in ("ppe_slacklog.training", "myproject"):
            logging.getLogger(name).addHandler(slack)
            logging.getLogger(name).setLevel(logging.INFO)
        log = logging.getLogger("myproject.data")

        class Items(Dataset):
            def __len__(self):
                return 6

            def __getitem__(self, i):
                log.warning("item %d", i)
                return torch.ones(2) * i

        def init(worker):
            log.warning("worker %d started", worker)

        # Workers are forked again for every epoch (no persistent_workers):
        # two epochs are two rounds of forks, each ended by os._exit.
        loader = DataLoader(
            Items(), batch_size=2, num_workers=2, worker_init_fn=init,
            multiprocessing_context="fork",
        )
        model = torch.nn.Linear(2, 1)
        optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
        manager = ppe.training.ExtensionsManager(
            model, optimizer, 2, iters_per_epoch=len(loader)
        )
        manager.extend(ppe_slacklog.Slack("ignored", msg="epoch {manager.epoch}"))
        while not manager.stop_trigger:
            for batch in loader:
                with manager.run_iteration():
                    model(batch).sum().backward()
        """,
    )
    assert result.returncode == 0, result.stderr
    assert "SlackDeliveryWarning" not in result.stderr, result.stderr
    lines = _lines(emu)
    items = sorted(line for line in lines if " item " in line)
    assert items == sorted(
        f"⚠️ *myproject.data* item {i}" for i in range(6) for _ in "ab"
    )
    started = [line for line in lines if "started" in line and "worker" in line]
    assert sorted(started) == sorted(
        f"⚠️ *myproject.data* worker {w} started" for w in (0, 1) for _ in "ab"
    )
    # The training's own thread is whole, too.
    (thread_parent,) = [m for m in emu.top_level(CHANNEL) if "Training" in m.text]
    texts = [m.text for m in emu.thread(CHANNEL, thread_parent.ts)]
    assert "\n".join(texts[1:-1]).splitlines() == ["epoch 1", "epoch 2"]
    assert "Training finished" in texts[-1]


@pytest.mark.slack_emulator(rate_limits=False)  # 21 posts of 3,000 characters
def test_records_of_a_child_that_exits_at_once_all_arrive(emu: SlackEmulator) -> None:
    result = run_python(
        emu,
        """
        import logging, multiprocessing, os, threading
        from ppe_slacklog import SlackHandler

        handler = SlackHandler("experiment-progress", rate_limit=None)
        log = logging.getLogger("myproject")
        log.addHandler(handler)

        def log_many(who):
            # Frames longer than PIPE_BUF (UTF-8): two threads must not interleave.
            for i in range(10):
                log.warning("%s %d %s", who, i, "é" * 3000)

        pid = os.fork()
        if pid == 0:
            other = threading.Thread(target=log_many, args=("thread",))
            other.start()
            log_many("main")
            other.join()
            os._exit(0)
        os.waitpid(pid, 0)

        def in_process():
            log.warning("from multiprocessing")

        child = multiprocessing.get_context("fork").Process(target=in_process)
        child.start()
        child.join()
        """,
    )
    assert result.returncode == 0, result.stderr
    assert "SlackDeliveryWarning" not in result.stderr, result.stderr
    lines = _lines(emu)
    for who in ("main", "thread"):
        got = sorted(line for line in lines if line.startswith(f"⚠️ *myproject* {who} "))
        assert got == sorted(f"⚠️ *myproject* {who} {i} {'é' * 3000}" for i in range(10))
    assert "⚠️ *myproject* from multiprocessing" in lines


def test_a_child_whose_parent_is_gone_delivers_by_itself(emu: SlackEmulator) -> None:
    result = run_python(
        emu,
        """
        import logging, os, time
        from ppe_slacklog import SlackHandler

        handler = SlackHandler("experiment-progress")
        log = logging.getLogger("myproject")
        log.addHandler(handler)
        log.warning("from the parent")
        # Not forked while the sender is inside slack_sdk: a module it is
        # importing then would be half-imported in the child.
        handler.flush()
        parent = os.getpid()
        if os.fork() == 0:
            while os.getppid() == parent:  # until the parent has exited
                time.sleep(0.01)
            log.warning("from the orphan")
            handler.flush()
            os._exit(0)
        """,
    )
    # The orphan holds the output pipes open: run() returned after it ended.
    assert result.returncode == 0, result.stderr
    assert "parent of forked process" in result.stderr
    assert sorted(_lines(emu)) == [
        "⚠️ *myproject* from the orphan",
        "⚠️ *myproject* from the parent",
    ]


def test_a_record_cut_off_by_a_dying_child_is_counted_and_reported(
    emu: SlackEmulator,
) -> None:
    result = run_python(
        emu,
        """
        import logging, os, pickle
        from ppe_slacklog import SlackHandler, _forkpipe
        from ppe_slacklog.queueing import Post

        handler = SlackHandler("experiment-progress")
        log = logging.getLogger("myproject")
        log.addHandler(handler)
        pid = os.fork()
        if pid == 0:
            log.warning("whole")
            # What a child killed while writing leaves: half a frame.
            writer = _forkpipe._writer
            payload = pickle.dumps(Post("cut off"))
            frame = _forkpipe._HEADER.pack(os.getpid(), id(handler._outbox),
                                           len(payload)) + payload
            os.write(writer.fd, frame[: len(frame) // 2])
            os._exit(0)
        os.waitpid(pid, 0)
        handler.flush()
        print(handler.stats.dropped)
        """,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["1"]
    assert "logged in forked process" in result.stderr
    assert "was lost: the process ended (or gave up) while sending" in result.stderr
    assert _lines(emu) == ["⚠️ *myproject* whole"]


def test_a_signal_handler_logging_in_a_child_neither_hangs_nor_loses(
    emu: SlackEmulator,
) -> None:
    result = run_python(
        emu,
        """
        import logging, os, signal
        from ppe_slacklog import SlackHandler
        from ppe_slacklog.queueing import Post
        from ppe_slacklog.slackapi import FileData

        handler = SlackHandler("experiment-progress", rate_limit=None)
        log = logging.getLogger("myproject")
        log.addHandler(handler)
        pid = os.fork()
        if pid == 0:
            ticks = 0

            def on_alarm(signum, frame):
                global ticks
                ticks += 1
                log.warning("tick %d", ticks)

            # Posts with files of 2 MB (what an event with plots becomes)
            # take many writes to the pipe: the handler runs between them, on
            # the thread that is half-way through a frame, and logs again.
            signal.signal(signal.SIGALRM, on_alarm)
            signal.setitimer(signal.ITIMER_REAL, 0.001, 0.001)
            for i in range(4):
                plot = FileData(f"plot{i}.bin", bytes([i]) * 2_000_000)
                handler._outbox.submit(Post(f"plot {i}", files=(plot,)))
                for j in range(20):
                    log.warning("record %d.%d", i, j)
            signal.setitimer(signal.ITIMER_REAL, 0)
            log.warning("ticks: %d", ticks)
            os._exit(0)
        os.waitpid(pid, 0)
        """,
    )
    assert result.returncode == 0, result.stderr
    assert "SlackDeliveryWarning" not in result.stderr, result.stderr
    files = sorted((f.name, f.content) for f in emu.files)
    assert files == [(f"plot{i}.bin", bytes([i]) * 2_000_000) for i in range(4)]
    lines = _lines(emu)
    records = [line for line in lines if line.startswith("⚠️ *myproject* record")]
    assert len(records) == 80
    (summary,) = [line for line in lines if line.startswith("⚠️ *myproject* ticks:")]
    ticks = int(summary.rsplit(" ", 1)[1])
    assert ticks > 0
    got = sorted(line for line in lines if line.startswith("⚠️ *myproject* tick "))
    assert got == sorted(f"⚠️ *myproject* tick {n}" for n in range(1, ticks + 1))
