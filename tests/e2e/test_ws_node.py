"""WebSocket against Node's `ws` package (npm, tests/e2e/node): Node's
client against Tycho's server, and Tycho's client against Node's server."""
import json
import os
import subprocess
import time

import pytest

from conftest import TYCHO
from ws_support import ScriptServer, node_ready

HERE = os.path.dirname(os.path.abspath(__file__))
APP = os.path.join(HERE, "apps", "ws_app.lua")


@pytest.fixture(scope="module")
def node_dir():
    return node_ready()


@pytest.fixture(scope="module")
def srv():
    with ScriptServer(APP) as s:
        yield s
        s.stop_checked((0, 143, -15))


def node_client(node_dir, srv, scenario):
    p = subprocess.run(["node", os.path.join(node_dir, "ws_client.js"),
                        f"ws://{srv.host}:{srv.port}", scenario],
                       capture_output=True, text=True, timeout=20)
    assert p.returncode == 0, p.stderr
    return json.loads(p.stdout)


def stats(srv):
    import http.client
    c = http.client.HTTPConnection(srv.host, srv.port, timeout=10)
    c.request("GET", "/stats")
    out = json.loads(c.getresponse().read())
    c.close()
    return out


def test_node_client_echo_fragments_and_close(node_dir, srv):
    out = node_client(node_dir, srv, "echo")
    assert out["text"] == "grüße ✓" and out["textIsBinary"] is False
    assert out["binary"] == [0, 1, 2, 255] and out["binaryIsBinary"] is True
    assert out["fragmented"] == "frag-1 frag-2 frag-3"
    assert out["bigLength"] == 700 * 1024
    assert out["close"] == {"code": 4100, "reason": ""}  # our echo carries the code
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        if {"code": 4100, "reason": "node says bye"} in stats(srv)["closes"]:
            break
        time.sleep(0.02)
    assert {"code": 4100, "reason": "node says bye"} in stats(srv)["closes"]


def test_node_client_ping_pong_both_ways(node_dir, srv):
    out = node_client(node_dir, srv, "ping")
    assert out["pong"] == "node ping"
    assert out["serverPing"] == "are you there"
    assert out["report"].startswith("pong ")


def test_node_client_sees_server_close_code(node_dir, srv):
    assert node_client(node_dir, srv, "closecode") == {"code": 4003, "reason": "from the server"}


def test_node_client_oversize_gets_1009(node_dir, srv):
    assert node_client(node_dir, srv, "oversize")["code"] == 1009


def test_node_client_abrupt_disconnect(node_dir, srv):
    node_client(node_dir, srv, "abrupt")
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and not any(c["code"] == 1006 for c in stats(srv)["closes"]):
        time.sleep(0.02)
    assert any(c["code"] == 1006 for c in stats(srv)["closes"])


@pytest.fixture
def node_server(node_dir):
    p = subprocess.Popen(["node", os.path.join(node_dir, "ws_server.js")],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    line = p.stdout.readline()
    assert line.startswith("port "), p.stderr.read()
    yield int(line.split()[1])
    p.kill()
    p.wait(timeout=10)
    p.stdout.close()
    p.stderr.close()


def test_tycho_client_against_node_server(node_server):
    env = {**os.environ, "WS_PORT": str(node_server)}
    p = subprocess.run([TYCHO, os.path.join(HERE, "apps", "ws_client.lua")],
                       capture_output=True, text=True, timeout=60, env=env)
    assert p.returncode == 0, p.stderr
    assert "Sanitizer" not in p.stderr and "runtime error" not in p.stderr, p.stderr
    got = {}
    for line in p.stdout.splitlines():
        k, v = line.split("=", 1)
        got[k] = json.loads(v)
    assert got["state"] == "open"
    assert got["text"] == ["hello node", "text"]
    assert got["binary"] == [[0, 1, 2, 255], "binary"]
    assert got["big"] == [1024 * 1024, True]
    assert got["custom_header"] == "yes"
    assert got["ping"] is True
    assert got["server_close"] == [None, "closed", 4200, "node closes"]
    assert got["send_after_close"] == [None, "closed", 4200, "node closes"]
    assert got["protocol"] == ["json.v1", "protocol=json.v1"]
    assert got["client_close"] is True
    assert got["after_client_close"][1:3] == ["closed", 4300]
    assert got["refused"] == [True, "ECONNREFUSED"]
    assert got["bad_url"][0] is True and "ws://" in got["bad_url"][1]
