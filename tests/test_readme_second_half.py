"""The README's commands from its "## Images" section on, in a sandbox of their own (see test_readme.py,
which runs the first half): the two halves run on two test workers at once."""

from __future__ import annotations

import pytest

from test_readme import commands, readme_part, run_readme_command, sandbox  # noqa: F401  (sandbox: a fixture)


@pytest.mark.parametrize("command", commands(readme_part(second=True)))
def test_readme_command_runs(sandbox, command, capfd):  # noqa: F811
    run_readme_command(sandbox, command, capfd)


def test_the_halves_cover_every_command():
    halves = set(commands(readme_part(second=False))) | set(commands(readme_part(second=True)))
    assert set(commands()) <= halves
