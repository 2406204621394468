"""HTML form bodies (req:form, req:parts) as clients nobody here wrote send
them: curl -F (several files, a large file streamed to disk and compared by
sha256), curl --data-urlencode, Python's urllib and http.client posting
urlencoded forms, Node's fetch with FormData, and a malformed multipart body
over a raw socket, answered 400 by the handler while the server goes on."""
import hashlib
import http.client
import json
import os
import socket
import subprocess
import urllib.parse
import urllib.request

import pytest

from conftest import release_only
from tycho_server import Server

APP = r'''
local tycho = require "tycho"
local fs = tycho.fs
local dir = assert(tycho.process.env.FORM_DIR)
local app = tycho.http.router()

-- Buffered: the whole form, files with their data.
app:post("/form", function(req)
  local fields, files = req:form()
  if not fields then return 400, {}, files end
  local out = {}
  for name, f in pairs(files) do
    local list = f[1] and f or { f }
    out[name] = {}
    for i, one in ipairs(list) do
      out[name][i] = { filename = one.filename, content_type = one.content_type,
                       hex = one.data:gsub(".", function(c) return ("%02x"):format(c:byte()) end) }
    end
  end
  return { fields = fields, files = out }
end)

-- Streamed: each file part written to disk as it arrives.
app:post("/stream", function(req)
  local parts, err = req:parts()
  if not parts then return 415, {}, err end
  local saved, n = {}, 0
  for part in parts do
    if part.filename then
      n = n + 1
      local path = ("%s/%d.bin"):format(dir, n)
      local f <close> = assert(fs.open(path, "w"))
      local bytes = 0
      for chunk in part:chunks() do
        assert(f:write(chunk))
        bytes = bytes + #chunk
      end
      assert(f:close())
      saved[n] = { name = part.name, filename = part.filename, path = path, bytes = bytes }
    end
  end
  if parts.error then return 400, {}, parts.error end
  return saved
end)

app:get("/ping", function() return "pong" end)
return app
'''


@pytest.fixture(scope="module")
def srv(tmp_path_factory):
    base = tmp_path_factory.mktemp("forms")
    (base / "app.lua").write_text(APP)
    (base / "out").mkdir()
    env = dict(os.environ, FORM_DIR=str(base / "out"))
    with Server(base / "app.lua", "--max-body", str(200 * 1024 * 1024), env=env) as s:
        s.out = base / "out"
        yield s


def curl(*args):
    out = subprocess.run(["curl", "-sS", "--max-time", "120", *args],
                         capture_output=True, timeout=150)
    assert out.returncode == 0, out.stderr.decode(errors="replace")
    return out.stdout


def sha256_file(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def rss_peak_kib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    raise AssertionError("no VmHWM")


# --- multipart ---------------------------------------------------------------

def test_curl_form_fields_and_several_files(srv, tmp_path):
    a = tmp_path / "a.txt"
    a.write_bytes(b"first file\r\n--not a boundary\r\n")
    b = tmp_path / "b.png"
    b.write_bytes(bytes(range(256)) * 4)
    body = curl("-F", "title=Hello form", "-F", "tag=x", "-F", "tag=y",
                "-F", f"doc=@{a}", "-F", f"pics=@{b};type=image/png",
                "-F", f"pics=@{a};filename=renamed.txt", srv.url + "/form")
    got = json.loads(body)
    assert got["fields"] == {"title": "Hello form", "tag": ["x", "y"]}
    assert got["files"]["doc"] == [{"filename": "a.txt", "content_type": "text/plain",
                                    "hex": a.read_bytes().hex()}]
    pics = got["files"]["pics"]
    assert [p["filename"] for p in pics] == ["b.png", "renamed.txt"]
    assert pics[0]["content_type"] == "image/png"
    assert pics[0]["hex"] == b.read_bytes().hex()
    assert pics[1]["hex"] == a.read_bytes().hex()


def test_curl_files_streamed_to_disk_match_by_sha256(srv, tmp_path):
    big = tmp_path / "big.bin"
    with open(big, "wb") as f:
        for _ in range(48):
            f.write(os.urandom(1 << 20))
    small = tmp_path / "small.bin"
    small.write_bytes(os.urandom(70000))
    saved = json.loads(curl("-F", "note=two files", "-F", f"big=@{big}", "-F", f"small=@{small}",
                            srv.url + "/stream"))
    assert [(s["name"], s["filename"], s["bytes"]) for s in saved] == [
        ("big", "big.bin", big.stat().st_size), ("small", "small.bin", 70000)]
    assert sha256_file(saved[0]["path"]) == sha256_file(big)
    assert sha256_file(saved[1]["path"]) == sha256_file(small)
    for path in [big, small] + [s["path"] for s in saved]:
        os.unlink(path)  # pytest keeps the temp dirs of recent runs


@release_only("ASan keeps freed memory in quarantine, so peak RSS says nothing there")
def test_large_upload_does_not_grow_the_server(srv, tmp_path):
    big = tmp_path / "huge.bin"
    with open(big, "wb") as f:
        block = os.urandom(1 << 20)
        for _ in range(160):
            f.write(block)
    small = tmp_path / "warm.bin"
    small.write_bytes(os.urandom(1 << 20))
    curl("-F", f"warm=@{small}", srv.url + "/stream")  # first use: code paths, buffers
    before = rss_peak_kib(srv.proc.pid)
    saved = json.loads(curl("-F", f"huge=@{big}", srv.url + "/stream"))
    after = rss_peak_kib(srv.proc.pid)
    assert saved[0]["bytes"] == 160 << 20
    assert sha256_file(saved[0]["path"]) == sha256_file(big)
    os.unlink(saved[0]["path"])
    os.unlink(big)  # pytest keeps the temp dirs of recent runs
    # 160 MiB went through; the peak grew by a few MiB at most.
    assert after - before < 24 * 1024, (before, after)


def test_node_fetch_form_data(srv, tmp_path):
    script = """
const fd = new FormData();
fd.append("who", "node \\u00e9");
fd.append("upload", new Blob([new Uint8Array([0, 13, 10, 45, 45, 255])],
  { type: "application/octet-stream" }), "raw.bin");
const r = await fetch(process.argv[1] + "/form", { method: "POST", body: fd });
console.log(r.status + " " + await r.text());
"""
    out = subprocess.run(["node", "--input-type=module", "-e", script, srv.url],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    status, body = out.stdout.strip().split(" ", 1)
    assert status == "200"
    got = json.loads(body)
    assert got["fields"] == {"who": "node \u00e9"}
    f = got["files"]["upload"][0]
    assert (f["filename"], f["content_type"]) == ("raw.bin", "application/octet-stream")
    assert f["hex"] == "000d0a2d2dff"


# --- urlencoded --------------------------------------------------------------

def test_curl_data_urlencode(srv):
    body = curl("--data-urlencode", "msg=hello world & more",
                "--data-urlencode", "sym=\u20ac+%=", "-d", "n=1", "-d", "n=2",
                srv.url + "/form")
    assert json.loads(body) == {"fields": {"msg": "hello world & more", "sym": "\u20ac+%=",
                                           "n": ["1", "2"]}, "files": {}}


def test_python_urllib_posts_a_form(srv):
    data = urllib.parse.urlencode({"name": "Ada Lovelace", "langs": ["lua", "c"],
                                   "empty": ""}, doseq=True).encode()
    req = urllib.request.Request(srv.url + "/form", data=data)  # urlencoded by default
    with urllib.request.urlopen(req, timeout=20) as r:
        got = json.loads(r.read())
    assert got["fields"] == {"name": "Ada Lovelace", "langs": ["lua", "c"], "empty": ""}


def test_python_http_client_posts_a_form_and_a_non_form(srv):
    conn = http.client.HTTPConnection(srv.host, srv.port, timeout=20)
    try:
        conn.request("POST", "/form", body=urllib.parse.urlencode({"q": "a&b=c"}),
                     headers={"Content-Type": "application/x-www-form-urlencoded"})
        r = conn.getresponse()
        assert (r.status, json.loads(r.read())["fields"]) == (200, {"q": "a&b=c"})
        conn.request("POST", "/form", body='{"q":1}', headers={"Content-Type": "application/json"})
        r = conn.getresponse()
        assert r.status == 400
        assert b"not a form" in r.read()
    finally:
        conn.close()


# --- malformed ---------------------------------------------------------------

def read_response(sock):
    """One response with Content-Length from sock: (status, body)."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        assert chunk, data
        data += chunk
    head, rest = data.split(b"\r\n\r\n", 1)
    length = int([l for l in head.split(b"\r\n") if l.lower().startswith(b"content-length:")][0]
                 .split(b":")[1])
    while len(rest) < length:
        chunk = sock.recv(65536)
        assert chunk
        rest += chunk
    return int(head.split(b" ")[1]), rest[:length]


@pytest.mark.parametrize("body", [
    b"--XX\r\nContent-Disposition: form-data; name=\"a\"\r\n\r\nno final boundary",
    b"--XX\r\nContent-Disposition: form-data; name=\"a\"\nX: injected\r\n\r\nv\r\n--XX--\r\n",
    b"--XX\r\nContent-Type: text/plain\r\n\r\nno disposition\r\n--XX--\r\n",
    b"no boundary at all",
])
def test_malformed_multipart_gets_400_and_the_server_goes_on(srv, body):
    with socket.create_connection((srv.host, srv.port), timeout=20) as s:
        s.sendall(b"POST /stream HTTP/1.1\r\nHost: x\r\n"
                  b"Content-Type: multipart/form-data; boundary=XX\r\n"
                  b"Content-Length: " + str(len(body)).encode() + b"\r\n\r\n" + body)
        status, msg = read_response(s)
        assert status == 400, msg
        # the same connection serves the next request
        s.sendall(b"GET /ping HTTP/1.1\r\nHost: x\r\n\r\n")
        assert read_response(s) == (200, b"pong")
    with urllib.request.urlopen(srv.url + "/ping", timeout=20) as r:
        assert r.read() == b"pong"
