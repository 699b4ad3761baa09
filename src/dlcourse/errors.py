"""Errors that end a run with one clear line instead of a traceback."""

from __future__ import annotations


class DlcourseError(Exception):
    """A problem the user can fix; printed as one line, exit status `exit_code`."""

    exit_code = 2


class ConfigError(DlcourseError):
    """A bad config value: names the key, the value and what is allowed."""

    def __init__(self, key: str, value, allowed: str, message: str | None = None):
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


class NonFiniteLossError(DlcourseError):
    """Training diverged; the run stops and its last good checkpoint stays."""

    exit_code = 1


def fail(message: str, code: int = 2) -> None:
    """End the command with one line on stderr."""
    import sys

    print(f"error: {message}", file=sys.stderr)
    sys.exit(code)
