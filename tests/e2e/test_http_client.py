"""The HTTP client (tycho.http.request/get) against a server nobody here
wrote: Python's http.server, started by each test on port 0, counting the
TCP connections it accepts so keep-alive reuse is verified from outside,
and reading streamed uploads (chunked or with a Content-Length) itself."""
import hashlib
import http.server
import os
import threading

import pytest

from conftest import run


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def setup(self):
        super().setup()
        with self.server.lock:
            self.server.connections += 1

    def log_message(self, *args):
        pass

    def reply(self, status, body, headers=()):
        self.send_response(status)
        for name, value in headers:
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def do_GET(self):
        if self.path == "/hello":
            self.reply(200, b"hello from python", [("Content-Type", "text/plain")])
        elif self.path == "/chunked":
            self.send_response(200)
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            for piece in (b"alpha ", b"beta ", b"gamma"):
                self.wfile.write(b"%x\r\n%s\r\n" % (len(piece), piece))
            self.wfile.write(b"0\r\n\r\n")
        elif self.path == "/redirect":
            self.reply(302, b"", [("Location", "/hello")])
        elif self.path == "/big":
            self.reply(200, b"0123456789" * 100000)
        elif self.path == "/headers":
            body = "\n".join(f"{k.lower()}: {v}" for k, v in self.headers.items())
            self.reply(200, body.encode())
        else:
            self.reply(404, b"not found")

    do_HEAD = do_GET

    def do_POST(self):
        n = int(self.headers.get("Content-Length", "0"))
        data = self.rfile.read(n)
        self.reply(201, b"got " + data)


    def read_exact(self, n):
        data = self.rfile.read(n)
        if len(data) < n:
            raise ConnectionError(f"body cut off after {len(data)} of {n} bytes")
        return data

    def read_body(self):
        """Yields the request body's pieces, decoding chunked framing."""
        if self.headers.get("Transfer-Encoding", "").lower() != "chunked":
            n = int(self.headers.get("Content-Length", "0"))
            while n > 0:
                piece = self.read_exact(min(n, 65536))
                n -= len(piece)
                yield piece
            return
        while True:
            line = self.rfile.readline(100)
            if not line.endswith(b"\r\n"):
                raise ConnectionError("chunk size line cut off")
            size = int(line.split(b";")[0], 16)
            if size == 0:
                if self.rfile.readline(100) != b"\r\n":
                    raise ValueError("trailers are not expected")
                return
            yield self.read_exact(size)
            if self.read_exact(2) != b"\r\n":
                raise ValueError("chunk not followed by CRLF")

    def do_PUT(self):
        framing = "chunked" if "Transfer-Encoding" in self.headers else "length"
        digest, size = hashlib.sha256(), 0
        try:
            for piece in self.read_body():
                digest.update(piece)
                size += len(piece)
                with self.server.lock:
                    self.server.received += len(piece)
        except (ConnectionError, ValueError) as e:
            with self.server.lock:
                self.server.aborted.append(str(e))
            self.server.aborted_event.set()
            self.close_connection = True
            return
        self.reply(200, f"{framing} {size} {digest.hexdigest()}".encode())


class Http10Handler(Handler):
    protocol_version = "HTTP/1.0"


def start(handler):
    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    srv.daemon_threads = True
    srv.connections = 0
    srv.received = 0
    srv.aborted = []
    srv.aborted_event = threading.Event()
    srv.lock = threading.Lock()
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    return srv


@pytest.fixture
def server():
    srv = start(Handler)
    yield srv
    srv.shutdown()
    srv.server_close()


def tycho(tmp_path, code, *args):
    script = tmp_path / "client.lua"
    script.write_text(code)
    return run(str(script), *map(str, args), timeout=60)  # fails on a sanitizer report


def test_get_post_and_keep_alive_reuse(server, tmp_path):
    r = tycho(tmp_path, r"""
local port = ...
local base = "http://127.0.0.1:" .. port
for i = 1, 10 do
  local res = assert(tycho.http.get(base .. "/hello"))
  assert(res.status == 200 and res.body == "hello from python", res.body)
end
local res = assert(tycho.http.request{url = base .. "/echo", method = "POST", body = "some data"})
print(res.status, res.body, res.headers["content-type"] == nil)
local res2 = assert(tycho.http.get(base .. "/hello"))
print(res2.headers["content-type"], res2.headers["server"] ~= nil)
local c = require "tycho.http.client"
print("connections", c.stats.connections, "reused", c.stats.reused)
""", server.server_address[1])
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert lines[0] == "201\tgot some data\ttrue"
    assert lines[1] == "text/plain\ttrue"
    assert lines[2] == "connections\t1\treused\t11"
    assert server.connections == 1  # counted by the server itself


def test_chunked_redirect_head_and_404(server, tmp_path):
    r = tycho(tmp_path, r"""
local base = "http://127.0.0.1:" .. ...
local res = assert(tycho.http.get(base .. "/chunked"))
print(res.status, res.body)
res = assert(tycho.http.get(base .. "/redirect"))
print(res.status, res.headers.location)
res = assert(tycho.http.get(base .. "/redirect", {follow_redirects = true}))
print(res.status, res.body)
res = assert(tycho.http.request{url = base .. "/big", method = "HEAD"})
print(res.status, res.headers["content-length"], #res.body)
res = assert(tycho.http.get(base .. "/nothing-here"))
print(res.status, res.body)
""", server.server_address[1])
    assert r.returncode == 0, r.stderr
    assert r.stdout.splitlines() == [
        "200\talpha beta gamma",
        "302\t/hello",
        "200\thello from python",
        "200\t1000000\t0",
        "404\tnot found",
    ]
    assert server.connections == 1


def test_streamed_big_body_and_custom_headers(server, tmp_path):
    r = tycho(tmp_path, r"""
local base = "http://127.0.0.1:" .. ...
local res = assert(tycho.http.request{url = base .. "/big", stream = true})
local pieces, size = 0, 0
for piece in res:chunks() do pieces = pieces + 1; size = size + #piece end
print(size, pieces > 1)
res = assert(tycho.http.get(base .. "/headers", {headers = {["X-Custom"] = "yes", ["User-Agent"] = "mine"}}))
print(res.body:match("x%-custom: yes") ~= nil, res.body:match("user%-agent: mine") ~= nil)
""", server.server_address[1])
    assert r.returncode == 0, r.stderr
    assert r.stdout.splitlines() == ["1000000\ttrue", "true\ttrue"]


# Lua: fds() counts this process's open file descriptors.
FDS = r"""
local function fds()
  local n = 0
  local req = tycho.uv.fs_scandir("/proc/self/fd")
  while tycho.uv.fs_scandir_next(req) do n = n + 1 end
  return n
end
"""


def test_http10_server_gets_a_connection_per_request_and_no_fd_leak(tmp_path):
    srv = start(Http10Handler)
    try:
        r = tycho(tmp_path, FDS + r"""
local base = "http://127.0.0.1:" .. ...
-- warm up: the first request loads modules and may open descriptors
assert(tycho.http.get(base .. "/hello"))
local before = fds()
for i = 1, 200 do
  local res = assert(tycho.http.get(base .. "/hello"))
  assert(res.body == "hello from python")
end
-- closed handles release their fds within a loop turn or two
for _ = 1, 1000 do
  if fds() == before then break end
  tycho.sleep(0.001)
end
print(before, fds())
""", srv.server_address[1])
        assert r.returncode == 0, r.stderr
        before, after = r.stdout.split()
        assert before == after
        assert srv.connections == 201
    finally:
        srv.shutdown()
        srv.server_close()


def test_refused_and_https_errors(tmp_path):
    r = tycho(tmp_path, r"""
local res, err, code = tycho.http.get("https://127.0.0.1/")
print(code, err)
local net = tycho.net
local s = assert(net.listen{port = 0})
local port = s.port
s:close()
res, err, code = tycho.http.get("http://127.0.0.1:" .. port .. "/")
print(code)
""")
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert lines[0].startswith("ENOTSUP\tENOTSUP: https:// is not supported")
    assert lines[1] == "ECONNREFUSED"


# A generator body in Lua: `count` pieces of `size` bytes, piece i filled
# with the letter i mod 26, awaiting a loop turn before each; the same
# bytes in Python for the expected digest.
GENERATOR = r"""
local function pieces(count, size)
  local i = 0
  return function()
    if i == count then return nil end
    i = i + 1
    tycho.sleep(0)
    return string.char(97 + (i - 1) % 26):rep(size)
  end
end
"""


def pattern(count, size):
    return b"".join(bytes([97 + i % 26]) * size for i in range(count))


def test_streamed_uploads_chunked_and_with_content_length(server, tmp_path):
    data = os.urandom(3 * 1024 * 1024 + 123)
    (tmp_path / "upload.bin").write_bytes(data)
    r = tycho(tmp_path, GENERATOR + r"""
local port, path = ...
local base = "http://127.0.0.1:" .. port
local res = assert(tycho.http.request{url = base .. "/gen", method = "PUT", body = pieces(96, 65536)})
print(res.status, res.body)
local f = assert(tycho.fs.open(path))
local size = assert(tycho.fs.stat(path)).size
res = assert(tycho.http.request{url = base .. "/file", method = "PUT", body = f,
  headers = {["Content-Length"] = size}})
f:close()
print(res.status, res.body)
""", server.server_address[1], tmp_path / "upload.bin")
    assert r.returncode == 0, r.stderr
    assert r.stdout.splitlines() == [
        "200\tchunked %d %s" % (96 * 65536, hashlib.sha256(pattern(96, 65536)).hexdigest()),
        "200\tlength %d %s" % (len(data), hashlib.sha256(data).hexdigest()),
    ]
    assert server.aborted == []


def test_length_mismatch_and_failing_body_close_the_connection(server, tmp_path):
    r = tycho(tmp_path, GENERATOR + r"""
local base = "http://127.0.0.1:" .. ...
local c = require "tycho.http.client"
print(tycho.http.request{url = base .. "/short", method = "PUT", body = pieces(3, 1000),
  headers = {["Content-Length"] = "5000"}})
print(c.idle_count())
print(tycho.http.request{url = base .. "/fails", method = "PUT", body = function()
  error("the source broke", 0)
end})
print(c.idle_count())
local res = assert(tycho.http.request{url = base .. "/fine", method = "PUT", body = pieces(2, 10)})
print(res.body:match("^%S+ %d+"))
""", server.server_address[1])
    assert r.returncode == 0, r.stderr
    assert r.stdout.splitlines() == [
        "nil\tECONTENTLENGTH: request body ended after 3000 of 5000 bytes (Content-Length)"
        "\tECONTENTLENGTH",
        "0",
        "nil\tEBODY: request body failed: the source broke\tEBODY",
        "0",
        "chunked 20",
    ]
    # Python saw both uploads cut off, each on its own connection.
    assert len(server.aborted) == 2, server.aborted
    assert server.connections == 3


def test_cancelled_upload_closes_its_connection(server, tmp_path):
    r = tycho(tmp_path, FDS + r"""
local base = "http://127.0.0.1:" .. ...
-- warm up: the first request loads modules and may open descriptors
assert(tycho.http.get(base .. "/hello"))
require("tycho.http.client").close_idle()
local before = fds()
collectgarbage("stop") -- the request must close its connection, not the collector
local pulled = 0
local task = tycho.spawn(function()
  return tycho.http.request{url = base .. "/endless", method = "PUT", body = function()
    tycho.sleep(0)
    pulled = pulled + 1
    if pulled > 1000000 then return nil end -- a bound, never reached
    return ("z"):rep(16384)
  end}
end)
for _ = 1, 10000 do
  if pulled >= 128 then break end -- 2 MiB handed to the socket
  tycho.sleep(0.001)
end
task:cancel()
print(pcall(task.join, task))
for _ = 1, 1000 do
  if fds() == before then break end
  tycho.sleep(0.001)
end
print(pulled >= 128, fds() == before)
""", server.server_address[1])
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert lines[0].startswith("false\t") and "task was cancelled" in lines[0], lines
    assert lines[1] == "true\ttrue"
    assert server.aborted_event.wait(20)
    assert server.aborted == ["chunk size line cut off"] or \
        server.aborted[0].startswith("body cut off"), server.aborted
    assert server.received >= 1024 * 1024
