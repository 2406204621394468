"""Starts `tycho run APP --port 0` and waits for its "listening on" line."""
import os
import re
import select
import subprocess
import time

from conftest import TYCHO, check_no_sanitizer_report, end

LISTEN = re.compile(rb"listening on http://([0-9.]+):(\d+)")


class Server:
    def __init__(self, app, *args, env=None, cwd=None):
        self.proc = subprocess.Popen([TYCHO, "run", str(app), "--port", "0", *args],
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                     env=env, cwd=cwd)
        self.stderr = b""
        deadline = time.monotonic() + 20
        while True:
            m = LISTEN.search(self.stderr)
            if m:
                self.host, self.port = m.group(1).decode(), int(m.group(2))
                break
            if time.monotonic() > deadline or self.proc.poll() is not None:
                self.stop()
                raise RuntimeError("server did not start: " + self.stderr.decode(errors="replace"))
            self._read(0.2)

    def _read(self, timeout):
        r, _, _ = select.select([self.proc.stderr], [], [], timeout)
        if r:
            chunk = os.read(self.proc.stderr.fileno(), 65536)
            self.stderr += chunk
            return chunk
        return None

    def wait_stderr(self, pattern, timeout=20):
        """Reads stderr until pattern (bytes regex) appears; returns the match."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            m = re.search(pattern, self.stderr)
            if m:
                return m
            self._read(0.1)
        raise AssertionError(f"{pattern!r} not in stderr: {self.stderr.decode(errors='replace')}")

    @property
    def url(self):
        return f"http://{self.host}:{self.port}"

    def signal(self, sig):
        self.proc.send_signal(sig)

    def wait(self, timeout=20):
        code = self.proc.wait(timeout=timeout)
        while self._read(0):
            pass
        return code

    def stop_checked(self, codes=(0,)):
        """SIGTERM, then asserts a clean exit: a code in codes, no sanitizer report."""
        self.proc.terminate()
        code = self.wait()
        check_no_sanitizer_report(self.stderr)
        assert code in codes, self.stderr.decode(errors="replace")

    def stop(self):
        """Ends the process (conftest.end: SIGTERM first, so an ASan build
        checks for leaks at exit), reading stderr meanwhile; fails when
        stderr holds a sanitizer report."""
        if self.proc.stderr.closed:
            return
        end(self.proc, self._read)
        while self._read(0):
            pass
        for f in (self.proc.stdout, self.proc.stderr):
            f.close()
        check_no_sanitizer_report(self.stderr)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.stop()
