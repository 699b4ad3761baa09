"""Errors that end a run with one clear line instead of a traceback."""

from __future__ import annotations


class DlcourseError(Exception):
    """A problem the user can fix; printed as one line, exit status `exit_code`."""

    exit_code = 2


class ConfigError(DlcourseError):
    """A bad config value: names the key, the value and what is allowed."""

    def __init__(self, key: str | None = None, value=None, allowed: str | None = None, message: str | None = None):
        self.key, self.value, self.allowed = key, value, allowed
        super().__init__(message or f"{key}={value!r} is invalid: {allowed}")

    @classmethod
    def option(cls, group: str, option: str, problem: str) -> ConfigError:
        """About a choice of option, e.g. `model=cnn takes images, ...`."""
        return cls(group, option, problem, message=f"{group}={option} {problem}")


class DataError(DlcourseError):
    """Data that cannot be read or does not fit the task (missing file, bad column, ...)."""


class CheckpointError(DlcourseError):
    """A checkpoint that is missing, corrupt or does not fit the model."""


class OutputError(DlcourseError):
    """A file that cannot be written (a full disk, no permission, a folder in the way); nothing half-written stays."""

    exit_code = 1


class SweepFailedError(DlcourseError):
    """Some jobs of a sweep did not complete (the others did; the summary lists every job)."""

    exit_code = 1


class ExportError(DlcourseError):
    """A model that cannot be exported, or whose exported file does not predict as dlcourse does."""


class LrFindError(DlcourseError):
    """The learning-rate finder could not suggest a rate (too few steps, a loss that diverged at once)."""


class NonFiniteLossError(DlcourseError):
    """Training diverged; the run stops and its last good checkpoint stays."""

    exit_code = 1

    @classmethod
    def in_epoch(cls, epoch: int, lr: float) -> NonFiniteLossError:
        return cls(f"the loss became non-finite (nan or inf) in epoch {epoch}; the run stopped and its last good "
                   f"checkpoint stays. Try a lower learning rate (optimizer.lr is {lr:g} now) or gradient clipping "
                   "(task.gradient_clip_val=1.0)")


def fail(message: str, code: int = 2) -> None:
    """End the command with one line on stderr (console scripts only: the library raises DlcourseError)."""
    import sys

    print(f"error: {message}", file=sys.stderr)
    sys.exit(code)
