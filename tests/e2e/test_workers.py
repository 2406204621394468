"""`tycho run --workers N`: the supervisor, seen from outside with real
clients (http.client, curl) and real signals."""
import http.client
import os
import re
import signal
import subprocess
import threading
import time

import pytest

from conftest import TYCHO
from ops_support import stop_clean
from tycho_server import Server

APP = os.path.join(os.path.dirname(__file__), "apps", "ops_app.lua")


def get(s, path, timeout=10):
    """One request on a fresh connection: (status, body)."""
    conn = http.client.HTTPConnection(s.host, s.port, timeout=timeout)
    try:
        conn.request("GET", path, headers={"Connection": "close"})
        r = conn.getresponse()
        return r.status, r.read().decode()
    finally:
        conn.close()


def worker_pids(s, n, tries=400):
    """Asks /pid on fresh connections until n distinct workers answered."""
    seen = set()
    for _ in range(tries):
        seen.add(int(get(s, "/pid")[1]))
        if len(seen) == n:
            return seen
    raise AssertionError(f"only {seen} answered")


def alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # a zombie (exited, not reaped yet) counts as gone
    with open(f"/proc/{pid}/stat") as f:
        return f.read().split(")")[-1].split()[0] != "Z"


def wait_gone(pids, timeout=20):
    deadline = time.monotonic() + timeout
    while any(alive(p) for p in pids):
        assert time.monotonic() < deadline, f"still alive: {[p for p in pids if alive(p)]}"
        time.sleep(0.05)


def test_two_workers_serve_from_two_processes():
    with Server(APP, "--workers", "2") as s:
        assert b"(2 workers)" in s.stderr
        pids = worker_pids(s, 2)
        assert s.proc.pid not in pids  # the supervisor serves nothing itself
        stop_clean(s)
        wait_gone(pids)


def test_killed_worker_is_restarted_and_logged():
    with Server(APP, "--workers", "2") as s:
        pids = worker_pids(s, 2)
        victim = min(pids)
        os.kill(victim, signal.SIGKILL)
        gone = s.wait_stderr(rb"worker \d \(pid %d\) exited \(signal 9\); restarting in [0-9.]+s"
                             % victim)
        # the replacement's "ready" line comes after the exit line
        m = s.wait_stderr(rb"[\s\S]{%d}[\s\S]*?worker \d \(pid (\d+)\) ready" % gone.end())
        new = int(m.group(1))
        assert new not in pids
        assert worker_pids(s, 2) == (pids - {victim}) | {new}
        _, text = get(s, "/metrics")
        assert re.search(r"^tycho_worker_restarts_total 1$", text, re.M)
        assert re.search(r"^tycho_workers 2$", text, re.M)
        stop_clean(s)


def test_sigterm_drains_an_in_flight_slow_request_then_exits_0():
    with Server(APP, "--workers", "2") as s:
        pids = worker_pids(s, 2)
        conn = http.client.HTTPConnection(s.host, s.port, timeout=20)
        conn.request("GET", "/slow?s=1")
        s.wait_stderr(rb"slow request started in \d+")
        s.signal(signal.SIGTERM)
        s.wait_stderr(rb"SIGTERM: stopping 2 workers")
        r = conn.getresponse()
        assert (r.status, r.read()) == (200, b"slow done")
        assert s.wait() == 0
        assert b"all workers stopped" in s.stderr
        wait_gone(pids)
        with pytest.raises(OSError):
            get(s, "/", timeout=2)


def test_grace_period_bounds_the_drain():
    with Server(APP, "--workers", "1", "--grace", "0.5") as s:
        conn = http.client.HTTPConnection(s.host, s.port, timeout=20)
        conn.request("GET", "/slow?s=30")
        s.wait_stderr(rb"slow request started")
        started = time.monotonic()
        s.signal(signal.SIGTERM)
        assert s.wait(timeout=15) == 0
        assert time.monotonic() - started < 10
        with pytest.raises((http.client.HTTPException, OSError)):
            conn.getresponse().read()


class Load:
    """Client threads requesting / in a loop, half on keep-alive
    connections, half on a fresh connection per request; every outcome is
    counted."""

    def __init__(self, s, threads=4):
        self.s, self.ok, self.failed, self.errors = s, 0, 0, []
        self.stop = threading.Event()
        self.lock = threading.Lock()
        self.threads = [threading.Thread(target=self.run, args=(i % 2 == 0,))
                        for i in range(threads)]
        for t in self.threads:
            t.start()

    def run(self, keep):
        conn = None
        while not self.stop.is_set():
            try:
                if conn is None:
                    conn = http.client.HTTPConnection(self.s.host, self.s.port, timeout=10)
                conn.request("GET", "/", headers={} if keep else {"Connection": "close"})
                r = conn.getresponse()
                good = r.status == 200 and r.read() == b"hello\n"
                if not keep or r.getheader("Connection") == "close":
                    conn.close()
                    conn = None
            except (OSError, http.client.HTTPException) as e:
                good = False
                self.errors.append(repr(e))
                if conn:
                    conn.close()
                conn = None
            with self.lock:
                if good:
                    self.ok += 1
                else:
                    self.failed += 1

    def count(self):
        with self.lock:
            return self.ok + self.failed

    def finish(self):
        self.stop.set()
        for t in self.threads:
            t.join(timeout=30)
        return self.ok, self.failed


def test_sighup_rolling_restart_loses_no_request():
    with Server(APP, "--workers", "2") as s:
        before = worker_pids(s, 2)
        load = Load(s)
        try:
            deadline = time.monotonic() + 20
            while load.count() < 200:  # traffic is flowing
                assert time.monotonic() < deadline
                time.sleep(0.01)
            s.signal(signal.SIGHUP)
            s.wait_stderr(rb"rolling restart done")
            s.wait_stderr(rb"worker 2 \(pid \d+\) retired")
            at_done = load.count()
            while load.count() < at_done + 200:  # and still flows after
                assert time.monotonic() < deadline + 20
                time.sleep(0.01)
        finally:
            ok, failed = load.finish()
        assert failed == 0, load.errors[:5]
        assert ok > 400
        retired = {int(p) for p in re.findall(rb"pid (\d+)\) retired", s.stderr)}
        assert retired == before
        after = worker_pids(s, 2)
        assert not (after & before)
        stop_clean(s)


def test_workers_exit_when_the_supervisor_is_killed():
    with Server(APP, "--workers", "2") as s:
        pids = worker_pids(s, 2)
        s.signal(signal.SIGKILL)
        s.wait()
        wait_gone(pids)


def test_app_failing_in_every_worker_stops_the_supervisor(tmp_path):
    app = tmp_path / "bad.lua"
    app.write_text("error('no database')\n")
    r = subprocess.run([TYCHO, "run", str(app), "--port", "0", "--workers", "2"],
                       capture_output=True, text=True, timeout=30)
    assert r.returncode == 1
    assert "no database" in r.stderr
    assert re.search(r"worker \d \(pid \d+\) exited \(code 1\) before it was ready: stopping",
                     r.stderr)


@pytest.mark.parametrize("value", ["0", "x", "-1"])
def test_bad_workers_value_is_a_usage_error(value):
    r = subprocess.run([TYCHO, "run", APP, "--workers", value],
                       capture_output=True, text=True, timeout=30)
    assert r.returncode == 2
    assert f"bad value '{value}' for --workers" in r.stderr


def test_workers_auto_is_the_number_of_cores():
    with Server(APP, "--workers", "auto") as s:
        assert f"({os.cpu_count()} workers)".encode() in s.stderr
        stop_clean(s)


def test_log_level_warn_hides_info_lines():
    with Server(APP, "--workers", "1", "--log-level", "warn") as s:
        pid = worker_pids(s, 1).pop()
        os.kill(pid, signal.SIGKILL)
        s.wait_stderr(rb"\d\d:\d\d:\d\d\.\d{3}Z warn \[supervisor\] worker 1 \(pid %d\) exited" % pid)
        assert worker_pids(s, 1) != {pid}
        stop_clean(s)
        assert b" info " not in s.stderr


def test_repl_socket_per_worker(tmp_path):
    path = str(tmp_path / "app.sock")
    with Server(APP, "--workers", "2", "--repl", path) as s:
        deadline = time.monotonic() + 20
        while not (os.path.exists(path + ".1") and os.path.exists(path + ".2")):
            assert time.monotonic() < deadline, os.listdir(tmp_path)
            time.sleep(0.05)
        assert not os.path.exists(path)
        r = subprocess.run([TYCHO, "attach", path + ".2"], input="print(tycho.uv.os_getpid())\n",
                           capture_output=True, text=True, timeout=30)
        assert int(float(r.stdout.strip().splitlines()[-1])) in worker_pids(s, 2)
        stop_clean(s)


def test_watch_reloads_in_every_worker(tmp_path):
    app = tmp_path / "app.lua"
    src = ('return function(req) return "%s " .. math.tointeger(tycho.uv.os_getpid()) end\n')
    app.write_text(src % "v1")
    with Server(app, "--workers", "2", "--watch") as s:
        def answers():
            seen = {}
            for _ in range(400):
                word, pid = get(s, "/")[1].split()
                seen[int(pid)] = word
                if len(seen) == 2:
                    return seen
            raise AssertionError(seen)
        pids = set(answers())
        assert set(answers().values()) == {"v1"}
        tmp = tmp_path / "app.lua.tmp"
        tmp.write_text(src % "v2")
        os.rename(tmp, app)  # an editor's atomic save
        # one line per worker (two processes writing at once may interleave them)
        s.wait_stderr(rb"reloaded app\.lua[\s\S]*reloaded app\.lua")
        after = answers()
        assert set(after) == pids  # the same processes, reloaded in place
        assert set(after.values()) == {"v2"}
        stop_clean(s)


def test_sighup_with_a_broken_app_keeps_the_old_workers(tmp_path):
    app = tmp_path / "app.lua"
    app.write_text('return function() return "good" end\n')
    with Server(app, "--workers", "2") as s:
        pids = worker_pids_of(s, 2)
        app.write_text("return function( -- a syntax error\n")
        s.signal(signal.SIGHUP)
        s.wait_stderr(rb"rolling restart: new worker 1 did not become ready; keeping the old one")
        assert get(s, "/") == (200, "good")
        assert worker_pids_of(s, 2) == pids
        assert b"rolling restart done" not in s.stderr
        app.write_text('return function() return "fixed" end\n')
        s.signal(signal.SIGHUP)
        s.wait_stderr(rb"rolling restart done")
        s.wait_stderr(rb"worker 2 \(pid \d+\) retired")
        assert get(s, "/") == (200, "fixed")
        stop_clean(s)


def worker_pids_of(s, n):
    """Worker pids as /proc sees them: the supervisor's children."""
    deadline = time.monotonic() + 20
    while True:
        with open(f"/proc/{s.proc.pid}/task/{s.proc.pid}/children") as f:
            pids = {int(p) for p in f.read().split()}
        if len(pids) == n:
            return pids
        assert time.monotonic() < deadline, pids
        time.sleep(0.05)


def test_ctrl_c_to_the_process_group_drains_once(tmp_path):
    """A terminal's Ctrl-C signals the supervisor and every worker at once:
    each worker drains once (the supervisor's stop is not a second signal)."""
    err = open(tmp_path / "stderr.txt", "w+b")
    proc = subprocess.Popen([TYCHO, "run", APP, "--port", "0", "--workers", "2"],
                            stdout=subprocess.DEVNULL, stderr=err, start_new_session=True)
    try:
        deadline = time.monotonic() + 20
        while not (m := re.search(rb"listening on http://([0-9.]+):(\d+)",
                                  (tmp_path / "stderr.txt").read_bytes())):
            assert time.monotonic() < deadline and proc.poll() is None
            time.sleep(0.05)
        host, port = m.group(1).decode(), int(m.group(2))
        conn = http.client.HTTPConnection(host, port, timeout=20)
        conn.request("GET", "/slow?s=1")
        while b"slow request started" not in (tmp_path / "stderr.txt").read_bytes():
            assert time.monotonic() < deadline
            time.sleep(0.02)
        os.killpg(proc.pid, signal.SIGINT)
        r = conn.getresponse()
        assert (r.status, r.read()) == (200, b"slow done")
        assert proc.wait(timeout=20) == 0
        log = (tmp_path / "stderr.txt").read_bytes()
        assert len(re.findall(rb"worker \d \(pid \d+\) exited \(code 0\)", log)) == 2, log
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        err.close()
