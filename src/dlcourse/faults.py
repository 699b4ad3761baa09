"""Faults that end a run from outside: a signal (SIGTERM from a scheduler or `kill`, Ctrl+C) and a disk
that fills up. Each ends the command with one line that says what stays and how to go on, and a
non-zero status (Lightning's own end of a SIGTERM is a silent exit 0 without metrics.json)."""

from __future__ import annotations

import errno
import os
import shutil
import signal
import threading
from contextlib import contextmanager
from pathlib import Path

from dlcourse.errors import DlcourseError, OutputError

FULL = (errno.ENOSPC, errno.EDQUOT)
NEARLY_FULL = 1 << 20  # bytes: below this a write that failed without an errno (torch.save) ran out of space
# Set by the SLURM launcher when a job near its time limit has requeued itself: the exit and the signals
# that end its step then belong to that requeue (the next attempt resumes), not to a user stopping the run.
requeued = threading.Event()


class RunInterrupted(DlcourseError):
    """A run ended by a signal; the checkpoints of its finished epochs stay."""

    def __init__(self, message: str, exit_code: int):
        super().__init__(message)
        self.exit_code = exit_code


class DiskFullError(OutputError):
    """No space left for a file the run writes; what was written before stays."""


def how_to_go_on(run_dir: Path) -> str:
    if (run_dir / "checkpoints" / "last.ckpt").exists():
        return f"the checkpoints of the finished epochs stay: resume with dlcourse-train ckpt_path={run_dir}"
    return "no epoch had finished, so there is nothing to resume: start the run again"


def nearly_full(path: str | Path) -> bool:
    try:
        return shutil.disk_usage(os.path.dirname(os.path.abspath(path))).free < NEARLY_FULL
    except OSError:
        return False


def as_disk_error(error: BaseException, path: str | Path) -> OSError | None:
    """An error of a failed write as the OSError it stands for (torch.save's RuntimeError says only
    'file write failed'), or None when it is something else."""
    if isinstance(error, OSError):
        return error
    if isinstance(error, RuntimeError) and "write" in str(error) and nearly_full(path):
        return OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(path))
    return None


@contextmanager
def ending_cleanly(run_dir: Path, trainer=None):
    """Around a run's training and final writes: a signal or a full disk becomes one DlcourseError line."""
    from lightning.pytorch.utilities.exceptions import SIGTERMException

    previous = threading.excepthook

    def quiet(args) -> None:  # a logger's writer thread on a full disk: the run's own line says it
        if not (isinstance(args.exc_value, OSError) and args.exc_value.errno in FULL):
            previous(args)

    threading.excepthook = quiet
    ctrl_c = []
    previous_int = _on_ctrl_c(ctrl_c)
    try:
        yield
    except SIGTERMException:
        if requeued.is_set():
            raise SystemExit(0) from None
        if ctrl_c:
            raise RunInterrupted(f"the run was stopped (Ctrl+C); {how_to_go_on(run_dir)}", 130) from None
        raise RunInterrupted(f"the run was stopped (SIGTERM); {how_to_go_on(run_dir)}", 143) from None
    except SystemExit:
        if trainer is None or not trainer.interrupted or requeued.is_set():
            raise
        # Lightning turns Ctrl+C (KeyboardInterrupt) into sys.exit(1) after a graceful shutdown
        raise RunInterrupted(f"the run was stopped (Ctrl+C); {how_to_go_on(run_dir)}", 130) from None
    except KeyboardInterrupt:
        raise RunInterrupted(f"the run was stopped (Ctrl+C); {how_to_go_on(run_dir)}", 130) from None
    except (OSError, RuntimeError) as e:
        disk = as_disk_error(e, run_dir / "metrics.json")
        if disk is None or disk.errno not in FULL:
            raise
        where = disk.filename or f"a file in {run_dir}"
        raise DiskFullError(f"no space left on the device for {where}; {how_to_go_on(run_dir)} once there is space") from None
    finally:
        threading.excepthook = previous
        if previous_int is not None:
            signal.signal(signal.SIGINT, previous_int)


def _on_ctrl_c(seen: list):
    """Ctrl+C stops the run as SIGTERM does, at the end of a batch (Lightning's handler, while it trains),
    rather than as a KeyboardInterrupt at any point (one inside a logger's writer hung the process at
    exit). Outside training it is the KeyboardInterrupt it always was. The handler it replaces, or None."""
    if threading.current_thread() is not threading.main_thread():
        return None

    def handler(signum, frame) -> None:
        seen.append(signum)
        graceful = signal.getsignal(signal.SIGTERM)
        if callable(graceful):  # Lightning's, during fit: it sets trainer.received_sigterm
            graceful(signal.SIGTERM, frame)
        else:
            raise KeyboardInterrupt

    return signal.signal(signal.SIGINT, handler)
