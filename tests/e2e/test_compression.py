"""gzip end to end, against clients and servers nobody here wrote: curl
(--compressed and without), Python's http.client with gzip.decompress,
Node's fetch (decodes gzip itself) against `tycho run --gzip`; a chunked,
compressed stream read piece by piece while its handler still runs; and the
Tycho client against Python's http.server sending gzip and deflate."""
import gzip
import hashlib
import http.client
import http.server
import json
import os
import subprocess
import threading
import zlib

import pytest

from conftest import ROOT, run
from tycho_server import Server

APP = r'''
local core = require "tycho.core"
local app = tycho.http.router()
local TEXT = {}
for i = 1, 400 do TEXT[i] = ("line %d of a text that compresses well\n"):format(i) end
TEXT = table.concat(TEXT)
local waiting -- the /stream handler parked until /go
app:get("/text", function() return TEXT end)
app:get("/json", function(_, res)
  local rows = {}
  for i = 1, 100 do rows[i] = { id = i, name = "row " .. i, tags = { "a", "b" } } end
  res:json(rows)
end)
app:get("/small", function() return "small" end)
app:get("/stream", function(_, res)
  res:header("Content-Type", "text/plain")
  res:write("event 1\n")
  local co, tok = core.token()
  waiting = { co, tok }
  core.park()
  res:write("event 2\n")
  res:finish("the end\n")
end)
app:get("/go", function()
  if not waiting then return 409, {}, "nobody waits" end
  core.wake(waiting[1], waiting[2])
  waiting = nil
  return "woken"
end)
return app
'''


def text_body():
    return "".join(f"line {i} of a text that compresses well\n" for i in range(1, 401)).encode()


@pytest.fixture(scope="module")
def srv(tmp_path_factory):
    app = tmp_path_factory.mktemp("gzip") / "app.lua"
    app.write_text(APP)
    s = Server(app, "--gzip")
    yield s
    s.stop()


def get(srv, path, headers=None):
    conn = http.client.HTTPConnection(srv.host, srv.port, timeout=20)
    conn.request("GET", path, headers=headers or {})
    r = conn.getresponse()
    body = r.read()
    conn.close()
    return r, body


def curl(*args):
    return subprocess.run(["curl", "-sS", "--max-time", "20", *args],
                          capture_output=True, timeout=30, check=True).stdout


def test_curl_compressed_and_identity(srv):
    head = curl("--compressed", "-D", "-", "-o", "/dev/null", srv.url + "/text").decode()
    assert "Content-Encoding: gzip" in head
    assert "Vary: Accept-Encoding" in head
    assert curl("--compressed", srv.url + "/text") == text_body()
    # without --compressed curl sends no Accept-Encoding: identity
    head = curl("-D", "-", "-o", "/dev/null", srv.url + "/text").decode()
    assert "Content-Encoding" not in head
    assert f"Content-Length: {len(text_body())}" in head
    assert curl(srv.url + "/text") == text_body()


def test_python_http_client_gets_gzip_bytes(srv):
    r, raw = get(srv, "/text", {"Accept-Encoding": "gzip"})
    assert r.status == 200
    assert r.getheader("Content-Encoding") == "gzip"
    assert int(r.getheader("Content-Length")) == len(raw)
    assert len(raw) < len(text_body()) // 5
    assert gzip.decompress(raw) == text_body()
    r, raw = get(srv, "/json", {"Accept-Encoding": "br;q=1.0, gzip;q=0.8"})
    assert r.getheader("Content-Encoding") == "gzip"
    rows = json.loads(gzip.decompress(raw))
    assert rows[99] == {"id": 100, "name": "row 100", "tags": ["a", "b"]}
    r, raw = get(srv, "/text", {"Accept-Encoding": "gzip;q=0"})
    assert r.getheader("Content-Encoding") is None
    assert raw == text_body()
    r, raw = get(srv, "/small", {"Accept-Encoding": "gzip"})
    assert r.getheader("Content-Encoding") is None
    assert raw == b"small"


def test_node_fetch_decodes(srv, tmp_path):
    script = tmp_path / "fetch.mjs"
    script.write_text("""
const res = await fetch(process.argv[2]);
const body = Buffer.from(await res.arrayBuffer());
console.log(JSON.stringify({status: res.status, encoding: res.headers.get("content-encoding"),
  length: body.length, text: body.toString("utf8")}));
""")
    p = subprocess.run(["node", str(script), srv.url + "/text"], capture_output=True,
                       text=True, timeout=60)
    assert p.returncode == 0, p.stderr
    out = json.loads(p.stdout)
    assert out["status"] == 200
    assert out["encoding"] == "gzip"  # Node's fetch asks for gzip and decodes it
    assert out["text"].encode() == text_body()


def test_streamed_gzip_arrives_piece_by_piece(srv):
    conn = http.client.HTTPConnection(srv.host, srv.port, timeout=20)
    conn.request("GET", "/stream", headers={"Accept-Encoding": "gzip"})
    r = conn.getresponse()
    assert r.getheader("Content-Encoding") == "gzip"
    assert r.getheader("Transfer-Encoding") == "chunked"
    d = zlib.decompressobj(16 + zlib.MAX_WBITS)
    # The handler is parked after its first write: what arrives now is all
    # it wrote, and it decodes on its own (the write ended in a sync flush).
    first = b""
    for _ in range(100):
        piece = r.read1(65536)
        assert piece, "stream ended before the first event"
        first += d.decompress(piece)
        if first:
            break
    assert first == b"event 1\n"
    go, body = get(srv, "/go")
    assert (go.status, body) == (200, b"woken")
    rest = d.decompress(r.read()) + d.flush()
    assert d.eof
    assert rest == b"event 2\nthe end\n"
    conn.close()


def test_no_gzip_flag_no_compression(tmp_path):
    app = tmp_path / "app.lua"
    app.write_text(APP)
    s = Server(app)
    try:
        r, raw = get(s, "/text", {"Accept-Encoding": "gzip"})
        assert r.getheader("Content-Encoding") is None
        assert r.getheader("Vary") is None
        assert raw == text_body()
    finally:
        s.stop()


def test_proxy_example_relays_gzip_untouched(srv):
    """examples/proxy in front of the --gzip server: the client's own
    Accept-Encoding goes upstream and the gzip bytes come back as sent."""
    env = dict(os.environ, UPSTREAM=srv.url)
    proxy = Server(os.path.join(ROOT, "examples", "proxy", "app.lua"), env=env)
    try:
        r, raw = get(proxy, "/text", {"Accept-Encoding": "gzip"})
        assert r.status == 200
        assert r.getheader("Content-Encoding") == "gzip"
        assert gzip.decompress(raw) == text_body()
        r, raw = get(proxy, "/text")
        assert r.getheader("Content-Encoding") is None
        assert raw == text_body()
        assert curl("--compressed", proxy.url + "/json").startswith(b'[{"')
    finally:
        proxy.stop()


# ---------------------------------------------------------------------------
# The Tycho client against Python's http.server

PAYLOAD = b"".join(b"payload %d, the same words again and again\n" % i for i in range(2000))
BOMB_SIZE = 48 * 1024 * 1024
BOMB = gzip.compress(b"\0" * BOMB_SIZE)  # about 47 KB on the wire


class GzipHandler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def do_GET(self):
        self.server.seen.append(self.headers.get("Accept-Encoding"))
        if self.path == "/gzip":
            self.reply(gzip.compress(PAYLOAD), "gzip")
        elif self.path == "/deflate":
            self.reply(zlib.compress(PAYLOAD), "deflate")
        elif self.path == "/corrupt":
            self.reply(b"\x1f\x8b\x08\x00" + b"\x00" * 40, "gzip")
        elif self.path == "/empty":  # nothing was encoded: an empty body
            self.reply(b"", "gzip")
        elif self.path == "/bomb":
            self.reply(BOMB, "gzip")
        elif self.path == "/range":  # byte ranges of the representation sent
            first, last = map(int, self.headers["Range"].split("=")[1].split("-"))
            gz = "gzip" in (self.headers.get("Accept-Encoding") or "")
            whole = gzip.compress(PAYLOAD) if gz else PAYLOAD
            self.send_response(206)
            if gz:
                self.send_header("Content-Encoding", "gzip")
            self.send_header("Content-Range", f"bytes {first}-{last}/{len(whole)}")
            self.send_header("Content-Length", str(last - first + 1))
            self.end_headers()
            self.wfile.write(whole[first:last + 1])
        elif self.path == "/chunked":
            self.send_response(200)
            self.send_header("Content-Encoding", "gzip")
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            data = gzip.compress(PAYLOAD)
            for i in range(0, len(data), 1000):
                part = data[i:i + 1000]
                self.wfile.write(b"%x\r\n%s\r\n" % (len(part), part))
            self.wfile.write(b"0\r\n\r\n")
        else:
            self.reply(PAYLOAD, None)

    def reply(self, body, encoding):
        self.send_response(200)
        if encoding:
            self.send_header("Content-Encoding", encoding)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


@pytest.fixture
def origin():
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), GzipHandler)
    server.seen = []
    t = threading.Thread(target=server.serve_forever, daemon=True)
    t.start()
    yield server
    server.shutdown()
    server.server_close()


CLIENT = r'''
local http = tycho.http
local base = arg[1]
local function digest(s) return #s .. ":" .. (s:sub(1, 30):gsub("\n", "|")) end
local r = assert(http.get(base .. "/gzip"))
print("gzip", digest(r.body), r.content_encoding, r.headers["content-encoding"], r.headers["content-length"])
r = assert(http.get(base .. "/deflate"))
print("deflate", digest(r.body), r.content_encoding)
r = assert(http.get(base .. "/chunked"))
print("chunked", digest(r.body))
r = assert(http.get(base .. "/chunked", { stream = true }))
local parts = {}
for piece in r:chunks() do parts[#parts + 1] = piece end
print("streamed", digest(table.concat(parts)), r.content_encoding)
r = assert(http.get(base .. "/gzip", { decompress = false }))
print("raw", #r.body, r.body:sub(1, 2) == "\31\139", r.headers["content-encoding"])
print("corrupt", select(3, http.get(base .. "/corrupt")))
print("toolarge", select(3, http.get(base .. "/gzip", { max_body = 1000 })))
r = assert(http.get(base .. "/plain"))
print("plain", digest(r.body), r.content_encoding)
r = assert(http.get(base .. "/empty"))
print("empty", #r.body, r.content_encoding)
r = assert(http.get(base .. "/empty", { stream = true }))
print("empty streamed", r:read_all())
-- A streamed bomb without max_body: read piece by piece, each piece stays
-- small however well the wire bytes inflate.
r = assert(http.get(base .. "/bomb", { stream = true }))
local total, largest = 0, 0
for piece in r:chunks() do
  total, largest = total + #piece, math.max(largest, #piece)
end
print("bomb", total, largest)
-- A range of a gzipped representation cannot be decoded alone: a Range
-- request asks for no encoding (as Go's client does).
r = assert(http.get(base .. "/range", { headers = { Range = "bytes=100-129" } }))
print("range", r.status, r.body:gsub("\n", "|"), r.content_encoding)
'''


def test_tycho_client_decodes_python_gzip(origin, tmp_path):
    script = tmp_path / "client.lua"
    script.write_text(CLIENT)
    base = f"http://127.0.0.1:{origin.server_address[1]}"
    r = run(str(script), base, timeout=60)
    assert r.returncode == 0, r.stderr
    lines = dict(line.split("\t", 1) for line in r.stdout.splitlines())
    head = PAYLOAD[:30].decode().replace("\n", "|")
    want = f"{len(PAYLOAD)}:{head}"
    assert lines["gzip"] == f"{want}\tgzip\tnil\tnil"
    assert lines["deflate"] == f"{want}\tdeflate"
    assert lines["chunked"] == want
    assert lines["streamed"] == f"{want}\tgzip"
    assert lines["raw"] == f"{len(gzip.compress(PAYLOAD))}\ttrue\tgzip"
    assert lines["corrupt"] == "EDECODE"
    assert lines["toolarge"] == "ETOOLARGE"
    assert lines["plain"] == f"{want}\tnil"
    # Content-Encoding: gzip on an empty body is an empty body (as curl, Go,
    # browsers), not a decoding error
    assert lines["empty"] == "0\tgzip"
    assert lines["empty streamed"] == ""
    total, largest = map(int, lines["bomb"].split("\t"))
    assert total == BOMB_SIZE
    assert largest <= 8 * 1024 * 1024
    assert lines["range"] == "206\t" + PAYLOAD[100:130].decode().replace("\n", "|") + "\tnil"
    # asked for gzip by default; not with decompress = false, nor with Range
    assert origin.seen.count("gzip, deflate") == 10
    assert origin.seen.count(None) == 2
