"""Every example under examples/ run as its header comment says, with real
requests from Python's http.client and curl, so none of them rots."""
import hashlib
import http.client
import http.server
import json
import os
import re
import shutil
import socket
import subprocess
import threading
import time

import pytest

from conftest import ROOT, TYCHO
from tycho_server import Server

EX = os.path.join(ROOT, "examples")


def example(name, file="app.lua"):
    return os.path.join(EX, name, file)


def request(srv, method, path, body=None, headers=None):
    """One request on a fresh connection; returns (status, headers, body bytes)."""
    c = http.client.HTTPConnection(srv.host, srv.port, timeout=20)
    try:
        c.request(method, path, body=body, headers=headers or {})
        r = c.getresponse()
        return r.status, {k.lower(): v for k, v in r.getheaders()}, r.read()
    finally:
        c.close()


def get_json(srv, method, path, body=None):
    headers = {"Content-Type": "application/json"} if body is not None else {}
    status, hdrs, data = request(srv, method, path, body, headers)
    return status, hdrs, (json.loads(data) if data else None)


def test_every_example_has_a_test():
    tested = {"hello", "rest-api", "static-site", "upload", "proxy", "offload",
              "script", "hot-reload", "chat"}
    present = {d for d in os.listdir(EX) if os.path.isdir(os.path.join(EX, d))}
    assert present == tested


# --- hello -------------------------------------------------------------------

def test_hello_plaintext_json_and_param():
    with Server(example("hello")) as srv:
        out = subprocess.run(["curl", "-sS", "-i", srv.url + "/"], capture_output=True,
                             text=True, timeout=20)
        assert out.returncode == 0, out.stderr
        assert out.stdout.startswith("HTTP/1.1 200")
        assert "text/plain" in out.stdout
        assert out.stdout.endswith("\n\nHello, World!")  # text mode: \r\n read as \n
        status, hdrs, body = get_json(srv, "GET", "/json")
        assert (status, hdrs["content-type"], body) == (200, "application/json",
                                                        {"message": "Hello, World!"})
        assert get_json(srv, "GET", "/hello/ada")[2] == {"hello": "ada"}


# --- rest-api ----------------------------------------------------------------

def test_rest_api_crud():
    with Server(example("rest-api")) as srv:
        assert get_json(srv, "GET", "/todos")[2] == []
        status, hdrs, body = get_json(srv, "POST", "/todos", json.dumps({"title": "docs"}))
        assert status == 201
        assert body == {"id": 1, "title": "docs", "done": False}
        assert hdrs["location"] == "/todos/1"
        get_json(srv, "POST", "/todos", json.dumps({"title": "tests", "done": True}))
        assert [t["title"] for t in get_json(srv, "GET", "/todos")[2]] == ["docs", "tests"]
        status, _, body = get_json(srv, "PATCH", "/todos/1", json.dumps({"done": True}))
        assert (status, body) == (200, {"id": 1, "title": "docs", "done": True})
        assert get_json(srv, "GET", "/todos/1")[2]["done"] is True
        status, _, data = request(srv, "DELETE", "/todos/1")
        assert (status, data) == (204, b"")
        status, _, body = get_json(srv, "GET", "/todos/1")
        assert (status, body) == (404, {"error": "no todo with id 1"})


@pytest.mark.parametrize("method,path,body,status,error", [
    ("POST", "/todos", "{not json", 400, "invalid JSON body"),
    ("POST", "/todos", "[1, 2]", 400, "the body must be a JSON object"),
    ("POST", "/todos", "{}", 400, "title must be a non-empty string of at most 200 characters"),
    ("POST", "/todos", json.dumps({"title": "x" * 201}), 400, "title must be a non-empty string"),
    ("POST", "/todos", json.dumps({"title": "a", "done": "yes"}), 400, "done must be true or false"),
    ("POST", "/todos", json.dumps({"title": "a", "owner": 1}), 400, "unknown field 'owner'"),
    ("GET", "/todos/abc", None, 400, "id must be a positive integer"),
    ("GET", "/todos/99", None, 404, "no todo with id 99"),
    ("PATCH", "/todos/99", "{}", 404, "no todo with id 99"),
])
def test_rest_api_validation(method, path, body, status, error):
    with Server(example("rest-api")) as srv:
        got, hdrs, data = get_json(srv, method, path, body)
        assert got == status
        assert hdrs["content-type"] == "application/json"
        assert data["error"].startswith(error)


def test_rest_api_wrong_method_is_405():
    with Server(example("rest-api")) as srv:
        status, hdrs, _ = request(srv, "PUT", "/todos")
        assert status == 405
        assert "GET" in hdrs["allow"] and "POST" in hdrs["allow"]


# --- static-site -------------------------------------------------------------

def test_static_site_files_and_api():
    public = os.path.join(EX, "static-site", "public")
    # Started from another directory: public/ is found next to app.lua.
    with Server(example("static-site"), cwd="/") as srv:
        status, hdrs, data = request(srv, "GET", "/")
        assert status == 200
        assert hdrs["content-type"].startswith("text/html")
        assert data == open(os.path.join(public, "index.html"), "rb").read()
        status, hdrs, data = request(srv, "GET", "/style.css")
        assert (status, hdrs["content-type"]) == (200, "text/css; charset=utf-8")
        assert data == open(os.path.join(public, "style.css"), "rb").read()
        assert "max-age=60" in hdrs["cache-control"]
        status, _, _ = request(srv, "GET", "/style.css", headers={"If-None-Match": hdrs["etag"]})
        assert status == 304
        status, _, data = request(srv, "GET", "/app.js", headers={"Range": "bytes=0-4"})
        assert (status, data) == (206, b"fetch")
        assert request(srv, "GET", "/missing.html")[0] == 404
        assert request(srv, "GET", "/%2e%2e/app.lua")[0] == 403
        status, _, body = get_json(srv, "GET", "/api/time")
        assert status == 200
        assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", body["now"])


# --- upload ------------------------------------------------------------------

def test_upload_streams_body_to_a_file(tmp_path):
    env = dict(os.environ, UPLOAD_DIR=str(tmp_path / "up"))
    data = os.urandom(900 * 1024)
    with Server(example("upload"), env=env) as srv:
        # Chunked transfer encoding: an iterable body, sent in 64 KiB pieces.
        pieces = (data[i:i + 65536] for i in range(0, len(data), 65536))
        c = http.client.HTTPConnection(srv.host, srv.port, timeout=20)
        c.request("PUT", "/upload/blob.bin", body=pieces, encode_chunked=True)
        r = c.getresponse()
        assert r.status == 201
        assert json.loads(r.read()) == {"name": "blob.bin", "bytes": len(data)}
        c.close()
        saved = (tmp_path / "up" / "blob.bin").read_bytes()
        assert hashlib.sha256(saved).digest() == hashlib.sha256(data).digest()
        # curl -T, as in the example's comment.
        src = tmp_path / "note.txt"
        src.write_text("hello upload\n")
        out = subprocess.run(["curl", "-sS", "-T", str(src), srv.url + "/upload/note.txt"],
                             capture_output=True, text=True, timeout=20)
        assert json.loads(out.stdout) == {"name": "note.txt", "bytes": 13}
        status, _, listing = get_json(srv, "GET", "/files")
        assert listing == [{"name": "blob.bin", "bytes": len(data)},
                           {"name": "note.txt", "bytes": 13}]
        assert sorted(os.listdir(tmp_path / "up")) == ["blob.bin", "note.txt"]


def test_upload_refuses_bad_names_and_oversized_bodies(tmp_path):
    env = dict(os.environ, UPLOAD_DIR=str(tmp_path / "up"))
    with Server(example("upload"), env=env) as srv:
        status, _, body = get_json(srv, "PUT", "/upload/.hidden", "x")
        assert status == 400 and "file name must be" in body["error"]
        # Refused from the Content-Length alone, before any body byte is sent.
        with socket.create_connection((srv.host, srv.port), timeout=20) as s:
            s.sendall(b"PUT /upload/big.bin HTTP/1.1\r\nHost: x\r\n"
                      b"Content-Length: 2097152\r\n\r\n")
            assert s.recv(4096).startswith(b"HTTP/1.1 413 ")
        assert os.listdir(tmp_path / "up") == []


def test_upload_cut_off_by_the_client_leaves_no_file(tmp_path):
    up = tmp_path / "up"
    env = dict(os.environ, UPLOAD_DIR=str(up))
    with Server(example("upload"), env=env) as srv:
        with socket.create_connection((srv.host, srv.port), timeout=20) as s:
            s.sendall(b"PUT /upload/cut.bin HTTP/1.1\r\nHost: x\r\n"
                      b"Content-Length: 500000\r\n\r\n" + b"x" * 100000)
            # The partial upload exists while the body is arriving...
            deadline = time.monotonic() + 20
            while os.listdir(up) != [".cut.bin.part"]:
                assert time.monotonic() < deadline, os.listdir(up)
                time.sleep(0.01)
        # ...and is removed once the client is gone.
        deadline = time.monotonic() + 20
        while os.listdir(up):
            assert time.monotonic() < deadline, os.listdir(up)
            time.sleep(0.01)
        assert get_json(srv, "GET", "/files")[2] == []


def test_upload_browser_form_streams_files(tmp_path):
    up = tmp_path / "up"
    env = dict(os.environ, UPLOAD_DIR=str(up))
    big = os.urandom(700 * 1024)
    (tmp_path / "big.bin").write_bytes(big)
    (tmp_path / "note.txt").write_text("hi\n")
    with Server(example("upload"), env=env) as srv:
        status, hdrs, page = request(srv, "GET", "/")
        assert status == 200 and hdrs["content-type"].startswith("text/html")
        assert b'enctype="multipart/form-data"' in page
        out = subprocess.run(["curl", "-sS", "-F", "note=from curl",
                              "-F", f"file=@{tmp_path / 'big.bin'}",
                              "-F", f"file=@{tmp_path / 'note.txt'};filename=../x/n.txt",
                              srv.url + "/upload"], capture_output=True, text=True, timeout=30)
        assert out.returncode == 0, out.stderr
        assert json.loads(out.stdout) == {
            "fields": {"note": "from curl"},
            "files": [{"name": "big.bin", "bytes": len(big)}, {"name": "n.txt", "bytes": 3}]}
        assert hashlib.sha256((up / "big.bin").read_bytes()).digest() == \
            hashlib.sha256(big).digest()
        # A body cut short: 400, and none of its files is kept.
        body = (b"--B\r\nContent-Disposition: form-data; name=\"file\"; filename=\"cut.bin\"\r\n"
                b"\r\n" + b"x" * 1000)
        status, _, data = request(srv, "POST", "/upload", body,
                                  {"Content-Type": "multipart/form-data; boundary=B"})
        assert status == 400 and b"final boundary" in data
        assert sorted(os.listdir(up)) == ["big.bin", "n.txt"]


# --- proxy -------------------------------------------------------------------

def test_proxy_forwards_to_the_upstream():
    with Server(example("rest-api")) as upstream:
        env = dict(os.environ, UPSTREAM=upstream.url)
        with Server(example("proxy"), env=env) as proxy:
            status, hdrs, body = get_json(proxy, "POST", "/todos", json.dumps({"title": "via"}))
            assert (status, body) == (201, {"id": 1, "title": "via", "done": False})
            assert hdrs["location"] == "/todos/1"
            status, _, body = get_json(proxy, "GET", "/todos/abc")
            assert (status, body) == (400, {"error": "id must be a positive integer"})
            # The upstream really answered: it holds the todo made through the proxy.
            assert get_json(upstream, "GET", "/todos")[2] == [{"id": 1, "title": "via", "done": False}]


def test_proxy_upstream_down_is_502():
    with Server(example("hello")) as gone:
        url = gone.url
    env = dict(os.environ, UPSTREAM=url)  # its port is closed now
    with Server(example("proxy"), env=env) as proxy:
        status, _, body = get_json(proxy, "GET", "/json")
        assert status == 502
        assert body["error"].startswith("upstream " + url)


def wait_until(pred, what, timeout=20):
    """Polls pred (bounded) until it holds."""
    deadline = time.monotonic() + timeout
    while not pred():
        assert time.monotonic() < deadline, "timed out waiting for " + what
        time.sleep(0.01)


def part_size(path):
    try:
        return os.path.getsize(path)
    except FileNotFoundError:
        return -1


def test_proxy_streams_a_large_upload_through(tmp_path):
    """8 MiB through the proxy into the upload example: the upstream writes
    the first half to disk while the client still holds back the second,
    so the proxy passes the body on as it arrives instead of buffering it."""
    up = tmp_path / "up"
    data = os.urandom(8 * 1024 * 1024)
    half = len(data) // 2
    limit = ("--max-body", str(16 * 1024 * 1024))
    with Server(example("upload"), *limit, env=dict(os.environ, UPLOAD_DIR=str(up))) as upstream:
        env = dict(os.environ, UPSTREAM=upstream.url)
        with Server(example("proxy"), *limit, env=env) as proxy:
            part = up / ".big.bin.part"

            def pieces():
                for i in range(0, half, 65536):
                    yield data[i:i + 65536]
                wait_until(lambda: part_size(part) >= half, "the upstream to write the first half")
                for i in range(half, len(data), 65536):
                    yield data[i:i + 65536]

            c = http.client.HTTPConnection(proxy.host, proxy.port, timeout=30)
            c.request("PUT", "/upload/big.bin", body=pieces(), encode_chunked=True)
            r = c.getresponse()
            assert (r.status, json.loads(r.read())) == (201, {"name": "big.bin", "bytes": len(data)})
            c.close()
            saved = (up / "big.bin").read_bytes()
            assert hashlib.sha256(saved).digest() == hashlib.sha256(data).digest()
            # curl -T: a Content-Length upload (and Expect: 100-continue).
            src = tmp_path / "second.bin"
            src.write_bytes(data[:3 * 1024 * 1024])
            out = subprocess.run(["curl", "-sS", "-T", str(src), proxy.url + "/upload/second.bin"],
                                 capture_output=True, text=True, timeout=30)
            assert json.loads(out.stdout) == {"name": "second.bin", "bytes": 3 * 1024 * 1024}, out.stderr
            assert (up / "second.bin").read_bytes() == data[:3 * 1024 * 1024]
            proxy.stop_checked()
        upstream.stop_checked()


def test_proxy_streams_the_upstream_answer_back():
    """The upstream sends the first piece of a chunked answer and holds the
    rest until the client has read that piece through the proxy."""
    go = threading.Event()

    class Upstream(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args):
            pass

        def do_GET(self):
            self.send_response(200)
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            self.wfile.write(b"6\r\nfirst \r\n")
            self.wfile.flush()
            last = b"last" if go.wait(20) else b"late"  # late: held back by the proxy
            self.wfile.write(b"4\r\n" + last + b"\r\n0\r\n\r\n")

    upstream = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Upstream)
    upstream.daemon_threads = True
    threading.Thread(target=upstream.serve_forever, daemon=True).start()
    try:
        env = dict(os.environ, UPSTREAM="http://127.0.0.1:%d" % upstream.server_address[1])
        with Server(example("proxy"), env=env) as proxy:
            c = http.client.HTTPConnection(proxy.host, proxy.port, timeout=30)
            c.request("GET", "/stream")
            r = c.getresponse()
            assert (r.status, r.getheader("transfer-encoding")) == (200, "chunked")
            assert r.read(6) == b"first "
            go.set()
            assert r.read() == b"last"
            c.close()
            proxy.stop_checked()
    finally:
        upstream.shutdown()
        upstream.server_close()


def test_proxy_client_gone_mid_upload_cuts_the_upstream_upload(tmp_path):
    """A client that hangs up mid-body: the proxy closes its upstream
    connection too, so the upload example drops its partial file."""
    up = tmp_path / "up"
    limit = ("--max-body", str(16 * 1024 * 1024))
    with Server(example("upload"), *limit, env=dict(os.environ, UPLOAD_DIR=str(up))) as upstream:
        env = dict(os.environ, UPSTREAM=upstream.url)
        with Server(example("proxy"), *limit, env=env) as proxy:
            part = up / ".cut.bin.part"
            with socket.create_connection((proxy.host, proxy.port), timeout=20) as s:
                s.sendall(b"PUT /upload/cut.bin HTTP/1.1\r\nHost: x\r\n"
                          b"Content-Length: 4000000\r\n\r\n" + b"x" * 1000000)
                wait_until(lambda: part_size(part) >= 1000000, "the upstream to write the first MiB")
            wait_until(lambda: part_size(part) == -1, "the upstream to drop the partial file")
            assert os.listdir(up) == []
            proxy.stop_checked()
        upstream.stop_checked()


# --- offload -----------------------------------------------------------------

def test_offload_counts_primes_on_a_thread():
    with Server(example("offload")) as srv:
        status, _, body = get_json(srv, "GET", "/primes?below=100000")
        assert (status, body["primes"], body["below"]) == (200, 9592, 100000)
        assert get_json(srv, "GET", "/primes-inline?below=1000")[2]["primes"] == 168
        assert get_json(srv, "GET", "/primes?below=x")[0] == 400


def test_offload_ping_is_answered_while_a_job_runs():
    """Many pongs arrive between sending the heavy request and its answer:
    the loop was free while the thread counted."""
    with Server(example("offload")) as srv:
        result = {}
        sent = threading.Event()

        def heavy():
            c = http.client.HTTPConnection(srv.host, srv.port, timeout=60)
            c.request("GET", "/primes?below=3000000")
            result["sent"] = time.monotonic()
            sent.set()
            r = c.getresponse()
            result["body"] = json.loads(r.read())
            result["done"] = time.monotonic()
            c.close()

        t = threading.Thread(target=heavy)
        t.start()
        assert sent.wait(20)
        pongs = []
        for _ in range(100000):  # bounded; ends when the job's answer is in
            status, _, data = request(srv, "GET", "/ping")
            assert (status, data) == (200, b"pong")
            pongs.append(time.monotonic())
            if "done" in result:
                break
        t.join(timeout=60)
        assert result["body"]["primes"] == 216816
        during = [p for p in pongs if result["sent"] < p < result["done"]]
        assert len(during) >= 5, (len(during), result["body"])


# --- script ------------------------------------------------------------------

def test_script_runs_processes_on_a_timer_and_ends_by_itself():
    out = subprocess.run([TYCHO, example("script", "main.lua"), "3", "20"],
                         capture_output=True, text=True, timeout=30)
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert len(lines) == 4
    for i, line in enumerate(lines[:3], 1):
        assert re.fullmatch(rf"round {i}: load [\d.,]+, / used \d+%", line), line
    assert re.fullmatch(r"done: 3 rounds, mean load \d+\.\d\d", lines[3])
    bad = subprocess.run([TYCHO, example("script", "main.lua"), "0"],
                         capture_output=True, text=True, timeout=30)
    assert bad.returncode == 2 and "usage:" in bad.stderr


# --- hot-reload --------------------------------------------------------------

def test_hot_reload_keeps_state_across_a_save(tmp_path):
    app_dir = tmp_path / "hot"
    shutil.copytree(os.path.join(EX, "hot-reload"), app_dir)
    with Server(app_dir / "app.lua", "--watch") as srv:
        assert get_json(srv, "GET", "/")[2] == {"message": "Hello", "visits": 1, "generation": 1}
        greeting = app_dir / "greeting.lua"
        greeting.write_text(greeting.read_text().replace('"Hello"', '"Hello again"'))
        srv.wait_stderr(rb"reloaded app\.lua in \d+ ms")
        assert get_json(srv, "GET", "/")[2] == {"message": "Hello again", "visits": 2,
                                                "generation": 2}
        # A broken save changes nothing: the old code keeps serving.
        greeting.write_text("return {")
        srv.wait_stderr(rb"reload of app\.lua failed")
        assert get_json(srv, "GET", "/")[2] == {"message": "Hello again", "visits": 3,
                                                "generation": 2}


# --- chat --------------------------------------------------------------------

def test_chat_page_and_count():
    with Server(example("chat")) as srv:
        status, hdrs, data = request(srv, "GET", "/")
        assert status == 200 and hdrs["content-type"].startswith("text/html")
        assert b'<script src="chat.js">' in data
        assert get_json(srv, "GET", "/count")[2] == {"count": 0}
