"""Errors that end a run with one clear line instead of a traceback."""


class DlcourseError(Exception):
    """A problem the user can fix; printed as one line, exit status `exit_code`."""

    exit_code = 2


class ConfigError(DlcourseError):
    """A bad config value: names the key, the value and what is allowed."""

    def __init__(self, key: str, value, allowed: str):
        self.key, self.value, self.allowed = key, value, allowed
        super().__init__(f"{key}={value!r} is invalid: {allowed}")


class DataError(DlcourseError):
    """Data that cannot be read or does not fit the task (missing file, bad column, ...)."""


class CheckpointError(DlcourseError):
    """A checkpoint that is missing, corrupt or does not fit the model."""


class NonFiniteLossError(DlcourseError):
    """Training diverged; the run stops and its last good checkpoint stays."""

    exit_code = 1
