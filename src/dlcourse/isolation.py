"""A call of dlcourse inside someone else's process (a notebook, a script): afterwards the process is
as the caller had it. Hydra changes the working directory (hydra.job.chdir) and the logging set-up
(each run's train.log), Lightning the environment (PL_GLOBAL_SEED) and dlcourse the warnings
filters of a run; none of that outlives the call."""

from __future__ import annotations

import logging
import os
import sys
import warnings
from contextlib import contextmanager


@contextmanager
def isolated():
    """The process as the caller had it, once the block ends: the working directory, the environment,
    the logging set-up (restored_logging), the warnings filters and torch's thread count."""
    cwd, environ = os.getcwd(), dict(os.environ)
    threads = sys.modules["torch"].get_num_threads() if "torch" in sys.modules else None
    with warnings.catch_warnings(), restored_logging():
        try:
            yield
        finally:
            os.chdir(cwd)
            for key in set(os.environ) - set(environ):
                del os.environ[key]
            for key, value in environ.items():
                if os.environ.get(key) != value:
                    os.environ[key] = value
            if threads is not None:
                sys.modules["torch"].set_num_threads(threads)


@contextmanager
def restored_logging():
    """Every existing logger's handlers, level and filters as they were, once the block ends; handlers
    the block added to them are closed. Hydra's job logging (a console handler on the stream of the
    moment, the run's train.log) so ends with the run that set it up, whoever called it."""
    loggers = {name: _logger_state(logging.getLogger(name)) for name in
               ["", *[n for n, lg in logging.root.manager.loggerDict.items() if isinstance(lg, logging.Logger)]]}
    try:
        yield
    finally:
        opened = set()
        for name, state in loggers.items():
            logger = logging.getLogger(name)
            opened |= set(logger.handlers) - set(state[0])
            logger.handlers, logger.level, logger.propagate, logger.disabled, logger.filters = (
                list(state[0]), state[1], state[2], state[3], list(state[4]))
        for handler in opened:
            handler.close()


def _logger_state(logger: logging.Logger) -> tuple:
    return list(logger.handlers), logger.level, logger.propagate, logger.disabled, list(logger.filters)
