"""Helpers of the operations e2e tests (workers, access log, metrics)."""
import signal

from conftest import SANITIZER


def stop_clean(s, sig=signal.SIGTERM):
    """Stops a Server with sig: it must exit 0, and nothing it or its
    workers wrote may be a sanitizer report (an ASan build's leaks, UB)."""
    s.signal(sig)
    assert s.wait() == 0
    assert not SANITIZER.search(s.stderr), s.stderr.decode(errors="replace")
