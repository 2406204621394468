"""Shared fixtures for end-to-end tests: the built binary, run as a user would."""
import os
import subprocess
import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
TYCHO = os.environ.get("TYCHO", os.path.join(ROOT, "build", "tycho"))


def run(*args, input=None, timeout=30, cwd=None, env=None):
    """Runs tycho with args; returns CompletedProcess with text output."""
    return subprocess.run([TYCHO, *args], input=input, capture_output=True,
                          text=True, timeout=timeout, cwd=cwd, env=env)


@pytest.fixture
def tycho():
    return run
