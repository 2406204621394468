"""Helpers for the hardening tests (test_smuggling, test_abuse, test_runaway):
start `tycho run APP --port 0` on a temporary app, learn its port from the
"listening on" line, talk raw HTTP over sockets, read the server's RSS."""
import http.client
import re
import socket
import subprocess
import time

from conftest import TYCHO, check_no_sanitizer_report, end


class Server:
    def __init__(self, tmp_path, app_source, args=(), env=None, cmd=None):
        app = tmp_path / "app.lua"
        app.write_text(app_source)
        # stderr goes straight to a file: what the server logged before it
        # answered is there when the answer arrives.
        self.log_path = tmp_path / "stderr.txt"
        self.log = open(self.log_path, "w")
        self.proc = subprocess.Popen(
            [*(cmd or []), TYCHO, "run", str(app), "--port", "0", *args],
            stdout=subprocess.DEVNULL, stderr=self.log, env=env)
        self.port = None
        deadline = time.monotonic() + 60
        while self.port is None and time.monotonic() < deadline:
            m = re.search(r"listening on http://[^:]+:(\d+)", self.stderr())
            if m:
                self.port = int(m.group(1))
            elif self.proc.poll() is not None:
                break
            else:
                time.sleep(0.02)  # polls for the line, bounded by deadline
        if self.port is None:
            self.proc.kill()
            raise AssertionError("server did not start: " + self.stderr())

    def stderr(self):
        with open(self.log_path) as f:
            return f.read()

    def rss_kib(self):
        with open(f"/proc/{self.proc.pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
        raise AssertionError("no VmRSS")

    def get(self, path="/", timeout=30):
        """GET with Python's http.client: (status, body)."""
        c = http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout)
        try:
            c.request("GET", path)
            r = c.getresponse()
            return r.status, r.read()
        finally:
            c.close()

    def connect(self, timeout=10):
        s = socket.create_connection(("127.0.0.1", self.port), timeout=timeout)
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return s

    def stop(self):
        """Ends the server (conftest.end: SIGTERM first, so an ASan build
        checks for leaks at exit); fails when its stderr holds a sanitizer
        report. Returns the exit code."""
        if self.proc.poll() is None:
            end(self.proc)
        self.log.close()
        check_no_sanitizer_report(self.stderr())
        return self.proc.returncode


def read_response(sock, head_only=False, buf=b""):
    """Reads one response: (status, headers dict lower-case, body bytes), or
    None when the peer closed first. Skips 100 Continue; handles
    Content-Length and chunked bodies."""
    while b"\r\n\r\n" not in buf:
        chunk = sock.recv(65536)
        if not chunk:
            return None if not buf else (0, {}, buf)
        buf += chunk
    head, rest = buf.split(b"\r\n\r\n", 1)
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1])
    headers = {}
    for line in lines[1:]:
        k, v = line.split(":", 1)
        headers[k.strip().lower()] = v.strip()
    if status == 100:
        return read_response(sock, head_only, rest)
    return finish_body(sock, status, headers, rest, head_only)


def finish_body(sock, status, headers, rest, head_only):
    if head_only or status in (204, 304):
        return status, headers, b""
    if headers.get("transfer-encoding", "").lower() == "chunked":
        while not rest.endswith(b"0\r\n\r\n"):
            chunk = sock.recv(65536)
            if not chunk:
                break
            rest += chunk
        return status, headers, rest
    n = int(headers.get("content-length", "0"))
    while len(rest) < n:
        chunk = sock.recv(65536)
        if not chunk:
            break
        rest += chunk
    return status, headers, rest[:n]


def closed_by_peer(sock, timeout=5):
    """True when the peer closes (EOF or reset) within timeout."""
    sock.settimeout(timeout)
    try:
        while True:
            data = sock.recv(65536)
            if not data:
                return True
    except ConnectionResetError:
        return True
    except socket.timeout:
        return False
