"""The access log (`--access-log PATH|-`) and the error log's format, with
curl and http.client as clients."""
import os
import re
import subprocess
import time

from ops_support import stop_clean
from tycho_server import Server

APP = os.path.join(os.path.dirname(__file__), "apps", "ops_app.lua")
LINE = re.compile(r'^(\S+) - - \[(\d\d/\w{3}/\d{4}:\d\d:\d\d:\d\d \+0000)\] '
                  r'"(\S+) (\S+) HTTP/1\.(\d)" (\d{3}) (\d+) (\d+\.\d{6}) gen=(\d+) worker=(\d+)$')


def curl(url, *args):
    return subprocess.run(["curl", "-s", "--max-time", "20", *args, url],
                          capture_output=True, text=True, timeout=30).stdout


def wait_lines(path, n, timeout=20):
    deadline = time.monotonic() + timeout
    while True:
        lines = open(path).read().splitlines() if os.path.exists(path) else []
        if len(lines) >= n:
            return lines
        assert time.monotonic() < deadline, lines
        time.sleep(0.05)


def test_access_log_file_has_one_line_per_request(tmp_path):
    path = str(tmp_path / "access.log")
    with Server(APP, "--access-log", path) as s:
        assert curl(s.url + "/?a=1&b=2") == "hello\n"
        curl(s.url + "/missing")
        curl(s.url + "/fail")
        curl(s.url + "/", "-X", "POST", "-d", "x=1")
        curl(s.url + "/slow?s=0.5")
        lines = wait_lines(path, 5)
        stop_clean(s)
    m = [LINE.match(l) for l in lines]
    assert all(m), lines
    got = [(x.group(3), x.group(4), x.group(6), x.group(7)) for x in m]
    assert got == [("GET", "/?a=1&b=2", "200", "6"), ("GET", "/missing", "404", "10"),
                   ("GET", "/fail", "503", "11"), ("POST", "/", "405", "19"),
                   ("GET", "/slow?s=0.5", "200", "9")]
    assert all(x.group(1) == "127.0.0.1" and x.group(5) == "1" for x in m)
    assert all(x.group(9) == "1" and x.group(10) == "0" for x in m)
    latency = [float(x.group(8)) for x in m]
    # the slow one shows its time (libuv's millisecond timers may end a
    # fraction of a millisecond early)
    assert 0.45 <= latency[4] < 5
    assert max(latency[:4]) < 0.45


def test_malformed_request_is_logged_too(tmp_path):
    import socket
    path = str(tmp_path / "access.log")
    with Server(APP, "--access-log", path) as s:
        with socket.create_connection((s.host, s.port), timeout=10) as c:
            c.sendall(b"GET / HTTP/1.1\r\nHost: x\r\nBad Header\r\n\r\n")
            assert c.recv(100).startswith(b"HTTP/1.1 400 ")
        line = wait_lines(path, 1)[0]
        assert LINE.match(line) and '" 400 ' in line, line


def test_access_log_dash_goes_to_stdout_under_workers():
    with Server(APP, "--workers", "2", "--access-log", "-") as s:
        for i in range(20):
            curl(s.url + f"/?n={i}", "-H", "Connection: close")
        stop_clean(s)
        out = s.proc.stdout.read().decode()
    lines = out.splitlines()
    assert len(lines) == 20, out
    ms = [LINE.match(l) for l in lines]
    assert all(ms), lines  # whole lines: workers never interleave mid-line
    assert sorted(int(m.group(4).split("=")[1]) for m in ms) == list(range(20))
    assert {m.group(10) for m in ms} <= {"1", "2"}


def test_access_log_is_off_by_default():
    with Server(APP) as s:
        for _ in range(3):
            curl(s.url + "/")
        stop_clean(s)
        assert s.proc.stdout.read() == b""


def test_unwritable_access_log_is_an_error(tmp_path):
    r = subprocess.run([os.environ.get("TYCHO", "tycho"), "run", APP, "--port", "0",
                        "--access-log", str(tmp_path / "no" / "such" / "dir.log")],
                       capture_output=True, text=True, timeout=30)
    assert r.returncode == 1
    assert "--access-log" in r.stderr and "No such file or directory" in r.stderr


def test_error_log_lines_have_timestamp_level_and_source():
    with Server(APP, "--workers", "1", "--log-level", "debug") as s:
        stop_clean(s)
        err = s.stderr.decode()
    pat = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z (debug|info|warn|error) \[supervisor\] ")
    lines = [l for l in err.splitlines() if not l.startswith("listening on")]
    assert lines and all(pat.match(l) for l in lines), err
    assert any(" debug " in l and "started worker 1" in l for l in lines), err


def test_client_gone_before_the_response_is_logged_as_499(tmp_path):
    import socket
    path = str(tmp_path / "access.log")
    with Server(APP, "--access-log", path) as s:
        c = socket.create_connection((s.host, s.port), timeout=10)
        c.sendall(b"GET /slow?s=30 HTTP/1.1\r\nHost: x\r\n\r\n")
        s.wait_stderr(rb"slow request started")
        c.close()
        line = wait_lines(path, 1)[0]
        m = LINE.match(line)
        assert m and m.group(4) == "/slow?s=30" and m.group(6) == "499", line
