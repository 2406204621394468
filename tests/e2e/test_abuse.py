"""Slow and abusive clients against a real server (an app that calls
tycho.http.serve with small timeouts so the tests are fast): slowloris,
slow bodies, a client that never reads, 10 000 idle connections and floods
beyond max_connections. Throughout, other clients are answered and the
server's memory stays bounded."""
import http.client
import json
import socket
import time

import pytest

from hard_server import Server, closed_by_peer, read_response

APP = r'''
local http = require "tycho.http"
local big, mid = ("b"):rep(1024 * 1024), ("m"):rep(300 * 1024)
local server
server = assert(http.serve {
  port = 0, header_timeout = 1, body_timeout = 1, keepalive_timeout = 30,
  max_connections = tonumber(arg[1]) or 10100,
  handler = function(req, res)
    if req.path == "/stats" then
      return { connections = server.connections, kb = collectgarbage("count") }
    end
    if req.path == "/big" then return big end
    if req.path == "/mid" then return mid end
    if req.path == "/upload" then
      local body = req:body()
      return "got " .. #(body or "")
    end
    return "ok"
  end,
})
io.stderr:write(("listening on http://127.0.0.1:%d\n"):format(server.port))
io.stderr:flush()
'''


def get(server, path="/"):
    return server.get(path)


def stats(server):
    status, body = get(server, "/stats")
    assert status == 200
    return json.loads(body)


@pytest.fixture
def server(tmp_path):
    s = Server(tmp_path, APP)
    yield s
    s.stop()
    assert "Sanitizer" not in s.stderr()


def test_slowloris_is_cut_off_by_the_header_timeout(server):
    sock = server.connect()
    sock.settimeout(0.25)
    t0 = time.monotonic()
    head = b"GET / HTTP/1.1\r\nHost: t\r\n" + b"X-Slow: " + b"a" * 100
    got = b""
    for byte in head:  # one byte every 0.25 s, never finishing the head
        try:
            sock.sendall(bytes([byte]))
            got += sock.recv(4096)  # times out (the pace) until the server answers
        except socket.timeout:
            pass
        except (BrokenPipeError, ConnectionResetError):
            break
        if got:
            break
        # Meanwhile other clients are served at once.
        if byte == ord("H"):
            assert get(server) == (200, b"ok")
    elapsed = time.monotonic() - t0
    assert got.startswith(b"HTTP/1.1 408 "), got
    assert 0.9 < elapsed < 3.5
    assert closed_by_peer(sock)
    sock.close()


def test_slow_body_is_cut_off_by_the_body_timeout(server):
    sock = server.connect()
    sock.sendall(b"POST /upload HTTP/1.1\r\nHost: t\r\nContent-Length: 100\r\n\r\nabc")
    t0 = time.monotonic()
    resp = read_response(sock)
    assert resp[0] == 408
    assert 0.9 < time.monotonic() - t0 < 3.5
    assert closed_by_peer(sock)
    sock.close()
    # A body that keeps coming, a byte at a time within the timeout, is fine.
    sock = server.connect()
    sock.sendall(b"POST /upload HTTP/1.1\r\nHost: t\r\nContent-Length: 5\r\n\r\n")
    sock.settimeout(0.3)
    for byte in b"hello":
        try:
            assert sock.recv(100) == b""  # nothing yet: times out
        except socket.timeout:
            pass
        sock.sendall(bytes([byte]))
    sock.settimeout(10)
    assert read_response(sock)[2] == b"got 5"
    sock.close()


def test_a_client_that_never_reads_cannot_grow_memory(server):
    base = server.rss_kib()
    sock = server.connect()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    req = b"GET /big HTTP/1.1\r\nHost: t\r\n\r\n"
    sock.setblocking(False)
    sent = 0
    for _ in range(2000):  # asks for 2 GB of responses, reads none
        try:
            sent += sock.send(req)
        except BlockingIOError:
            break
    # The server answers others meanwhile, and holds about one response
    # for the stalled client, not hundreds.
    for _ in range(20):
        assert get(server) == (200, b"ok")
    grown = server.rss_kib() - base
    assert sent > 100 * len(req)
    assert grown < 16 * 1024, f"RSS grew by {grown} KiB"
    sock.close()
    assert get(server) == (200, b"ok")


def test_ten_thousand_idle_connections(tmp_path):
    s = Server(tmp_path, APP.replace("header_timeout = 1", "header_timeout = 120"))
    try:
        base = s.rss_kib()
        socks = []
        for _ in range(10000):
            socks.append(socket.create_connection(("127.0.0.1", s.port), timeout=30))
        deadline = time.monotonic() + 60
        st = stats(s)
        while st["connections"] < 10001 and time.monotonic() < deadline:
            st = stats(s)  # the server accepts at its own pace
        assert st["connections"] >= 10001  # the idle ones and this request
        per_conn = (s.rss_kib() - base) * 1024 / 10000
        print(f"\nper idle connection: {per_conn:.0f} bytes of server RSS")
        assert per_conn < 4096
        t0 = time.monotonic()
        assert get(s) == (200, b"ok")
        assert time.monotonic() - t0 < 2
        for sk in socks:
            sk.close()
        deadline = time.monotonic() + 60
        while stats(s)["connections"] > 1 and time.monotonic() < deadline:
            pass
        assert stats(s)["connections"] == 1
    finally:
        s.stop()


def test_a_flood_beyond_max_connections_gets_503_and_others_are_served(tmp_path):
    s = Server(tmp_path, APP.replace("header_timeout = 1", "header_timeout = 120"),
               args=["--", "50"])
    try:
        held = [s.connect() for _ in range(50)]
        # All 50 slots are taken once the server counts them (keep-alive
        # requests on the first held connection).
        deadline = time.monotonic() + 30
        n = 0
        while n < 50 and time.monotonic() < deadline:
            held[0].sendall(b"GET /stats HTTP/1.1\r\nHost: t\r\n\r\n")
            n = json.loads(read_response(held[0])[2])["connections"]
        assert n == 50
        for _ in range(300):
            sk = s.connect()
            r = read_response(sk)
            assert r is not None and r[0] == 503
            assert closed_by_peer(sk)
            sk.close()
        # Held connections still work; closing them frees the slots.
        held[-1].sendall(b"GET / HTTP/1.1\r\nHost: t\r\n\r\n")
        assert read_response(held[-1])[2] == b"ok"
        for sk in held:
            sk.close()
        deadline = time.monotonic() + 30
        ok = False
        while not ok and time.monotonic() < deadline:
            try:
                ok = get(s) == (200, b"ok")
            except (ConnectionError, http.client.HTTPException):
                pass
        assert ok
    finally:
        s.stop()


def test_large_responses_back_to_back_on_one_keep_alive_connection(server):
    """Responses past the write high-water mark pause reading; one the
    kernel takes at once must not leave the connection paused."""
    sock = server.connect()
    t0 = time.monotonic()
    for path in [b"/mid", b"/big"] * 3:
        sock.sendall(b"GET " + path + b" HTTP/1.1\r\nHost: t\r\n\r\n")
        status, _, body = read_response(sock)
        assert status == 200 and len(body) == (300 if path == b"/mid" else 1024) * 1024
    assert time.monotonic() - t0 < 2
    sock.close()
