"""The HTTP server as clients nobody here wrote see it: curl and Python's
http.client, plus raw sockets for pipelining and malformed input."""
import http.client
import os
import signal
import socket
import subprocess
import time

import pytest

from tycho_server import Server

APP = os.path.join(os.path.dirname(__file__), "apps", "http_app.lua")


@pytest.fixture(scope="module")
def srv():
    with Server(APP) as s:
        yield s


def raw(srv, data, timeout=10):
    """Sends bytes on a fresh connection and reads until the server closes."""
    with socket.create_connection((srv.host, srv.port), timeout=timeout) as s:
        s.sendall(data)
        out = b""
        while True:
            chunk = s.recv(65536)
            if not chunk:
                return out
            out += chunk


class Result:
    def __init__(self, proc):
        self.returncode = proc.returncode
        self.stdout = proc.stdout.decode(errors="replace")
        self.stderr = proc.stderr.decode(errors="replace")


def curl(*args):
    """Runs curl; output decoded without newline translation (CRLF kept)."""
    return Result(subprocess.run(["curl", "-s", "-S", "--max-time", "20", *args],
                                 capture_output=True, timeout=30))


def test_curl_plaintext_and_json(srv):
    r = curl("-i", srv.url + "/")
    assert r.returncode == 0
    assert r.stdout.startswith("HTTP/1.1 200 OK\r\n")
    assert "Content-Length: 13" in r.stdout and "Date: " in r.stdout
    assert r.stdout.endswith("\r\n\r\nHello, World!")
    assert curl(srv.url + "/json").stdout == '{"message":"Hello, World!"}'


def test_curl_post_and_chunked_upload(srv):
    assert curl("-d", "payload", srv.url + "/echo").stdout == "payload"
    r = curl("-H", "Transfer-Encoding: chunked", "--data-binary", "@-", srv.url + "/count")
    assert r.returncode == 0
    big = subprocess.run(["curl", "-s", "-H", "Transfer-Encoding: chunked", "--data-binary",
                          "@-", srv.url + "/count"], input=b"z" * 300000,
                         capture_output=True, timeout=30)
    assert big.stdout == b"300000"


def test_expect_100_continue(srv):
    body = "b" * 5000
    r = curl("-v", "-H", "Expect: 100-continue", "-d", body, srv.url + "/echo")
    assert "HTTP/1.1 100 Continue" in r.stderr
    assert r.stdout == body


def test_keep_alive_reuses_one_connection(srv):
    conn = http.client.HTTPConnection(srv.host, srv.port, timeout=10)
    for _ in range(5):
        conn.request("GET", "/")
        resp = conn.getresponse()
        assert resp.status == 200 and resp.read() == b"Hello, World!"
        assert not resp.will_close
    sock = conn.sock
    conn.request("GET", "/json")
    conn.getresponse().read()
    assert conn.sock is sock
    conn.close()


def test_http10_closes_unless_keep_alive(srv):
    out = raw(srv, b"GET / HTTP/1.0\r\n\r\n")
    assert out.startswith(b"HTTP/1.0 200 OK\r\n")
    assert b"Connection: close" in out
    with socket.create_connection((srv.host, srv.port), timeout=10) as s:
        s.sendall(b"GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n")
        head = s.recv(65536)
        assert b"Connection: keep-alive" in head
        s.sendall(b"GET /json HTTP/1.0\r\nConnection: keep-alive\r\n\r\n")
        assert b"Hello, World!" in s.recv(65536)


def test_pipelined_requests_answered_in_order(srv):
    reqs = b"".join(b"GET /order/%d HTTP/1.1\r\nHost: x\r\n\r\n" % i for i in range(1, 5))
    out = raw(srv, reqs + b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    bodies = [part.split(b"\r\n\r\n", 1)[1][:7] for part in out.split(b"HTTP/1.1 200 OK")[1:]]
    assert bodies == [b"order 1", b"order 2", b"order 3", b"order 4", b"Hello, "]


def test_connection_close_is_honoured(srv):
    out = raw(srv, b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    assert b"Connection: close" in out and out.endswith(b"Hello, World!")


def test_head_has_no_body(srv):
    out = raw(srv, b"HEAD / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    assert b"Content-Length: 13" in out
    assert out.endswith(b"\r\n\r\n")


def test_streaming_response_is_chunked(srv):
    conn = http.client.HTTPConnection(srv.host, srv.port, timeout=10)
    conn.request("GET", "/stream")
    resp = conn.getresponse()
    assert resp.getheader("Transfer-Encoding") == "chunked"
    assert resp.read() == b"".join(b"line %d\n" % i for i in range(1, 6))
    conn.close()


@pytest.mark.parametrize("request_bytes,status", [
    (b"GARBAGE\r\n\r\n", 400),
    (b"GET / HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", 400),
    (b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\nhello", 400),
    (b"GET / HTTP/1.1\r\nHost: x\r\nBad Header: v\r\n\r\n", 400),
    (b"GET / HTTP/1.1\nHost: x\n\n", 400),
    (b"GET / HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 20000 + b"\r\n\r\n", 431),
    (b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 9999999\r\n\r\n", 413),
    (b"GET / HTTP/2.0\r\nHost: x\r\n\r\n", 505),
], ids=["garbage", "cl-and-te", "two-cl", "space-in-name", "bare-lf", "huge-header",
        "huge-body", "http2-version"])
def test_malformed_requests_get_4xx_and_close(srv, request_bytes, status):
    before = int(curl(srv.url + "/calls").stdout)
    out = raw(srv, request_bytes)
    assert out.startswith(b"HTTP/1.1 %d " % status), out[:100]
    assert b"Connection: close" in out
    after = int(curl(srv.url + "/calls").stdout)
    assert after == before + 1  # only the /calls request itself reached a handler


def test_handler_error_gives_500_and_traceback_on_stderr(srv):
    r = curl("-i", srv.url + "/fail")
    assert r.stdout.startswith("HTTP/1.1 500 Internal Server Error")
    assert "handler exploded" not in r.stdout
    srv.wait_stderr(rb"handler failed: GET /fail: .*http_app\.lua:\d+: handler exploded")
    assert curl(srv.url + "/").stdout == "Hello, World!"


def test_no_response_gives_500_logged(srv):
    r = curl("-i", srv.url + "/nothing")
    assert r.stdout.startswith("HTTP/1.1 500")
    srv.wait_stderr(rb"handler returned without responding: GET /nothing")


def test_client_disconnect_cancels_the_request(srv):
    before = int(curl(srv.url + "/cancelled").stdout)
    calls = int(curl(srv.url + "/calls").stdout)
    s = socket.create_connection((srv.host, srv.port), timeout=10)
    s.sendall(b"GET /hang HTTP/1.1\r\nHost: x\r\n\r\n")
    deadline = time.monotonic() + 10
    # the handler runs once the server counted it (each poll counts too)
    while int(curl(srv.url + "/calls").stdout) < calls + 2:
        assert time.monotonic() < deadline
    s.close()
    deadline = time.monotonic() + 10
    while int(curl(srv.url + "/cancelled").stdout) == before:
        assert time.monotonic() < deadline, "the hanging request was not cancelled"
        time.sleep(0.05)


def test_sigterm_drains_in_flight_request_then_exits_0():
    with Server(APP) as s:
        conn = http.client.HTTPConnection(s.host, s.port, timeout=10)
        conn.request("GET", "/slow?s=0.5")
        deadline = time.monotonic() + 10
        # the request is in flight once the server counted it
        while int(curl(s.url + "/calls").stdout) < 2:
            assert time.monotonic() < deadline
        s.signal(signal.SIGTERM)
        resp = conn.getresponse()
        assert resp.status == 200 and resp.read() == b"slow done"
        assert s.wait() == 0
        # and it no longer accepts
        with pytest.raises(OSError):
            socket.create_connection((s.host, s.port), timeout=2).close()


def test_port_in_use_is_a_clear_error(srv, tycho):
    r = tycho("run", APP, "--port", str(srv.port))
    assert r.returncode == 1
    assert "EADDRINUSE" in r.stderr


def test_run_refuses_a_script_without_handler(tycho, tmp_path):
    app = tmp_path / "bad.lua"
    app.write_text("return 42\n")
    r = tycho("run", str(app), "--port", "0")
    assert r.returncode == 1
    assert "returned a number" in r.stderr


def test_run_bad_flag_exits_2(tycho):
    r = tycho("run", APP, "--bogus")
    assert r.returncode == 2
    assert "unknown option '--bogus'" in r.stderr


def test_run_max_body_flag_sets_the_limit(tmp_path):
    app = tmp_path / "echo.lua"
    app.write_text("return function(req) return req:body() end\n")
    with Server(app, "--max-body", "10") as s:
        conn = http.client.HTTPConnection(s.host, s.port, timeout=10)
        conn.request("POST", "/", body=b"x" * 10)
        resp = conn.getresponse()
        assert resp.status == 200 and resp.read() == b"x" * 10
        conn.close()
        out = raw(s, b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 11\r\n\r\n" + b"y" * 11)
        assert out.startswith(b"HTTP/1.1 413 ")


def test_run_max_body_needs_a_positive_count(tycho):
    r = tycho("run", APP, "--max-body", "0")
    assert r.returncode == 2
    assert "bad value '0' for --max-body" in r.stderr
