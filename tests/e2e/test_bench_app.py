"""bench/app.lua, the app the peer harness measures, answers what the
harness checks on every path (bench/run.sh, bench/callgrind.py), through
Python's http.client on one keep-alive connection and through curl."""
import http.client
import json
import os
import subprocess

from tycho_server import Server

APP = os.path.join(os.path.dirname(__file__), "..", "..", "bench", "app.lua")
JSON_BODY = b'{"message":"Hello, World!"}'


def test_every_path_over_one_keep_alive_connection():
    with Server(APP) as s:
        conn = http.client.HTTPConnection(s.host, s.port, timeout=10)
        answers = {}
        for path in ("/", "/json", "/json/encode", "/json/return", "/"):
            conn.request("GET", path)
            r = conn.getresponse()
            answers[path] = (r.status, r.getheader("Content-Type"),
                             r.getheader("Content-Length"), r.read())
            assert not r.will_close
        conn.close()
        assert answers["/"] == (200, "text/plain; charset=utf-8", "13", b"Hello, World!")
        for path in ("/json", "/json/encode", "/json/return"):
            status, ctype, clen, body = answers[path]
            assert (status, ctype, body) == (200, "application/json", JSON_BODY), path
            assert clen == str(len(JSON_BODY)), path
            assert json.loads(body) == {"message": "Hello, World!"}
        s.stop_checked()


def test_curl_sees_one_content_type_and_the_json():
    with Server(APP) as s:
        r = subprocess.run(["curl", "-sS", "-i", "--max-time", "10", s.url + "/json"],
                           capture_output=True, timeout=20)
        assert r.returncode == 0, r.stderr
        head, _, body = r.stdout.partition(b"\r\n\r\n")
        lines = head.lower().split(b"\r\n")
        assert lines[0] == b"http/1.1 200 ok"
        assert [ln for ln in lines if ln.startswith(b"content-type:")] == \
            [b"content-type: application/json"]
        assert body == JSON_BODY
        s.stop_checked()
