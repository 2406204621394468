"""Server-Sent Events read by `curl -N` and by Python's http.client:
framing of multi-line data, ids, retry, reconnect with Last-Event-ID,
heartbeats, and a disconnect ending the handler."""
import http.client
import json
import os
import subprocess
import time

import pytest

from ws_support import ScriptServer

APP = os.path.join(os.path.dirname(__file__), "apps", "ws_app.lua")


@pytest.fixture(scope="module")
def srv():
    with ScriptServer(APP) as s:
        yield s
        s.stop_checked((0, 143, -15))


def parse_events(text):
    """The event-stream parsing rules of the HTML standard, enough for tests."""
    events, cur, comments = [], {}, []
    for line in text.split("\n"):
        if line == "":
            if cur:
                if "data" in cur:
                    cur["data"] = "\n".join(cur["data"])
                events.append(cur)
            cur = {}
        elif line.startswith(":"):
            comments.append(line[1:].strip())
        else:
            name, _, value = line.partition(":")
            value = value[1:] if value.startswith(" ") else value
            if name == "data":
                cur.setdefault("data", []).append(value)
            else:
                cur[name] = value
    return events, comments


def test_curl_reads_the_stream(srv):
    p = subprocess.run(["curl", "-sN", "--max-time", "10", "-D", "-",
                        f"{srv.url}/events?count=2"], capture_output=True, text=True, timeout=20)
    assert p.returncode == 0, p.stderr
    head, body = p.stdout.split("\n\n", 1)  # text mode turned CRLF into LF
    assert "content-type: text/event-stream" in head.lower()
    assert "cache-control: no-cache" in head.lower()
    events, comments = parse_events(body)
    assert events == [
        {"event": "tick", "id": "1", "data": "event 1\nsecond line"},
        {"event": "tick", "id": "2", "data": "event 2\nsecond line"},
        {"retry": "50", "data": "bye"},
    ]
    assert "stream" in comments
    assert "data: event 1\ndata: second line\n" in body  # one data: line per line


def test_curl_reconnects_with_last_event_id(srv):
    p = subprocess.run(["curl", "-sN", "--max-time", "10", "-H", "Last-Event-ID: 41",
                        f"{srv.url}/events?count=3"], capture_output=True, text=True, timeout=20)
    events, _ = parse_events(p.stdout)
    assert [e.get("id") for e in events] == ["42", "43", "44", None]


def read_stream(conn, path, headers=None):
    conn.request("GET", path, headers=headers or {})
    r = conn.getresponse()
    assert r.status == 200
    assert r.getheader("Content-Type") == "text/event-stream"
    return r


def test_http_client_reconnect_loop(srv):
    """A client that reconnects with the last id it saw gets every event once."""
    seen, last = [], None
    for _ in range(3):
        conn = http.client.HTTPConnection(srv.host, srv.port, timeout=10)
        headers = {"Last-Event-ID": last} if last else {}
        r = read_stream(conn, "/events?count=2", headers)
        events, _ = parse_events(r.read().decode())
        conn.close()
        for e in events:
            if "id" in e:
                seen.append(int(e["id"]))
                last = e["id"]
    assert seen == [1, 2, 3, 4, 5, 6]


def test_http_client_reads_events_as_they_come(srv):
    conn = http.client.HTTPConnection(srv.host, srv.port, timeout=10)
    r = read_stream(conn, "/events/forever")
    buf, datas, comments = b"", [], []
    deadline = time.monotonic() + 10
    while len(datas) < 3 and time.monotonic() < deadline:
        buf += r.read1(4096)
        while b"\n\n" in buf:
            block, buf = buf.split(b"\n\n", 1)
            events, cmts = parse_events(block.decode() + "\n\n")
            datas += [e["data"] for e in events]
            comments += cmts
    conn.close()
    assert datas[:3] == ["n=1", "n=2", "n=3"]
    assert "heartbeat" in comments  # 50 ms heartbeats between 200 ms events


def stats(srv):
    c = http.client.HTTPConnection(srv.host, srv.port, timeout=10)
    c.request("GET", "/stats")
    out = json.loads(c.getresponse().read())
    c.close()
    return out


def test_disconnect_ends_the_handler(srv):
    before = stats(srv)["sse_ended"]
    conns = []
    for _ in range(5):
        conn = http.client.HTTPConnection(srv.host, srv.port, timeout=10)
        r = read_stream(conn, "/events/forever")
        assert b"n=1" in r.read1(4096) + r.read1(4096)
        conns.append(conn)
    assert stats(srv)["sse_open"] >= 5
    for conn in conns:
        conn.sock.close()
        conn.close()
    deadline = time.monotonic() + 10
    while stats(srv)["sse_ended"] < before + 5 and time.monotonic() < deadline:
        time.sleep(0.02)
    s = stats(srv)
    assert s["sse_ended"] == before + 5
    assert s["sse_open"] == 0
