"""A run directory belongs to one run. While a run writes it, it holds a lock (a second run into it is
refused, naming the holder; the lock of a process that died is taken over); a directory that holds
an earlier run is entered again only by resuming that run."""

from __future__ import annotations

import os
import socket
import time
from contextlib import nullcontext
from pathlib import Path

from dlcourse.errors import ConfigError, DlcourseError

LOCK = ".dlcourse.lock"


def _holder(lock: Path) -> tuple[int, str, str] | None:
    try:
        pid, host, since = lock.read_text().split(" ", 2)
        return int(pid), host, since.strip()
    except (OSError, ValueError):
        return None


def _alive(pid: int, host: str) -> bool:
    if host != socket.gethostname():
        return True  # another machine's process: it cannot be checked from here
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class RunDirectory:
    """`with RunDirectory(path, resuming):` around everything a run writes."""

    def __init__(self, path: str | Path, resuming: bool = False):
        # Resolved before any check: `new/../../<run>` is that run, and is refused as it is.
        self.path = Path(path).expanduser().resolve()
        self.resuming, self.lock = resuming, self.path / LOCK

    def __enter__(self) -> RunDirectory:
        earlier = self.path.is_dir() and any(p.name != LOCK for p in self.path.iterdir())
        try:
            self.path.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise DlcourseError(f"cannot create the run directory {self.path}: {e.strerror or e}") from None
        self._acquire()
        if earlier and not self.resuming:
            self._release()
            raise ConfigError("hydra.run.dir", str(self.path), "holds another run; choose a new directory, or resume "
                              f"that run with ckpt_path={self.path}")
        return self

    def _acquire(self, retry: bool = True) -> None:
        try:
            fd = os.open(self.lock, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        except FileExistsError:
            holder = _holder(self.lock)
            if holder is not None and _alive(holder[0], holder[1]):
                raise DlcourseError(f"{self.path} is in use by process {holder[0]} on {holder[1]} since {holder[2]}; "
                                    f"wait for it to finish, or choose another hydra.run.dir (if that process is "
                                    f"gone, delete {self.lock})") from None
            if not retry:
                raise DlcourseError(f"cannot take over the lock {self.lock}; delete it if no run uses {self.path}") from None
            self.lock.unlink(missing_ok=True)  # left by a process that died: taken over
            return self._acquire(retry=False)
        except OSError as e:
            raise DlcourseError(f"cannot write into the run directory {self.path}: {e.strerror or e}") from None
        with os.fdopen(fd, "w") as f:
            f.write(f"{os.getpid()} {socket.gethostname()} {time.strftime('%Y-%m-%d %H:%M:%S')}\n")

    def _release(self) -> None:
        holder = _holder(self.lock)
        if holder is not None and holder[0] == os.getpid():
            self.lock.unlink(missing_ok=True)

    def __exit__(self, *exc) -> None:
        self._release()


def run_lock(path: Path, resuming: bool):
    """The run directory's lock, taken by rank zero only: the other DDP ranks (started by Lightning:
    LOCAL_RANK; by srun under SLURM: SLURM_PROCID) write into rank zero's directory while it holds it."""
    extra_rank = any(os.environ.get(key, "0") != "0" for key in ("LOCAL_RANK", "SLURM_PROCID"))
    return nullcontext() if extra_rank else RunDirectory(path, resuming)
