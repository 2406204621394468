"""permessage-deflate against Node's `ws` package (tests/e2e/node): Node's
client with compression on against Tycho's server, and Tycho's client
against Node's server, over window bits 8..15 and context takeover on and
off, with large, binary, fragmented and small messages sent twice each."""
import json
import os
import subprocess

import pytest

from conftest import TYCHO
from test_ws_deflate import srv  # noqa: F401 (the app's fixture) pylint: disable=unused-import
from test_ws_node import node_dir  # noqa: F401 (a fixture) pylint: disable=unused-import

HERE = os.path.dirname(os.path.abspath(__file__))
CLIENT = os.path.join(HERE, "apps", "ws_deflate_client.lua")


def tycho_client(port, pmd):
    """apps/ws_deflate_client.lua against a server on port, with our
    permessage_deflate option pmd: -> its JSON report, checked for intact
    echoes and a clean close."""
    env = {**os.environ, "WS_PORT": str(port), "WS_PMD": json.dumps(pmd)}
    r = subprocess.run([TYCHO, CLIENT], capture_output=True, text=True, timeout=60, env=env)
    assert r.returncode == 0, r.stderr
    assert "Sanitizer" not in r.stderr and "runtime error" not in r.stderr, r.stderr
    out = json.loads(r.stdout)
    assert out["checks"] == [True] * 8
    assert out["close"] is True
    return out


def node_client(node_dir, srv, path, pmd):
    p = subprocess.run(["node", os.path.join(node_dir, "ws_deflate_client.js"),
                        f"ws://{srv.host}:{srv.port}{path}", json.dumps(pmd)],
                       capture_output=True, text=True, timeout=60)
    assert p.returncode == 0, p.stderr
    out = json.loads(p.stdout)
    assert out["checks"] == [True] * 8
    assert out["close"] == 1000
    return out


def node_opts(bits, nct):
    return {"threshold": 0, "serverMaxWindowBits": bits, "clientMaxWindowBits": bits,
            "serverNoContextTakeover": nct, "clientNoContextTakeover": nct}


@pytest.mark.parametrize("bits", range(8, 16))
@pytest.mark.parametrize("nct", [False, True], ids=["takeover", "no-takeover"])
def test_node_client_window_bits_and_takeover(node_dir, srv, bits, nct):
    out = node_client(node_dir, srv, "/custom?threshold=0", node_opts(bits, nct))
    want = {"server_max_window_bits": bits, "client_max_window_bits": bits}
    if nct:
        want.update(server_no_context_takeover=True, client_no_context_takeover=True)
    assert out["extensions"] == "permessage-deflate"
    assert out["params"] == want


def test_node_client_defaults_and_wire_savings(node_dir, srv):
    """ws's defaults (threshold 1024, client_max_window_bits offered) on the
    default route; the same exchange without the extension moves over 20
    times the bytes."""
    on = node_client(node_dir, srv, "/echo", True)
    assert on["params"] == {}
    off = node_client(node_dir, srv, "/echo", False)
    assert off["extensions"] == "" and off["params"] is None
    assert on["wire"] * 20 < off["wire"], (on["wire"], off["wire"])


def test_node_client_against_our_limits(node_dir, srv):
    """Our route asks for 9-bit windows and no context takeover on both
    sides; Node's client, with its defaults, goes along."""
    out = node_client(node_dir, srv, "/custom?bits=9&snct=1&cnct=1&threshold=0", {"threshold": 0})
    assert out["params"] == {"server_no_context_takeover": True, "client_no_context_takeover": True,
                             "server_max_window_bits": 9, "client_max_window_bits": 9}


def node_server(node_dir, pmd):
    p = subprocess.Popen(["node", os.path.join(node_dir, "ws_deflate_server.js"), json.dumps(pmd)],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    line = p.stdout.readline()
    assert line.startswith("port "), p.stderr.read()
    return p, int(line.split()[1])


SERVER_CASES = [
    # (Node server's perMessageDeflate, our permessage_deflate, what both agree on)
    ({"threshold": 0}, True, {}),
    (False, True, None),
    ({"threshold": 0}, False, None),
    ({"threshold": 0, "clientMaxWindowBits": 8}, {"threshold": 0}, {"client_max_window_bits": 8}),
    ({"threshold": 0, "serverMaxWindowBits": 10}, {"threshold": 0}, {"server_max_window_bits": 10}),
    ({**node_opts(9, True)}, {"threshold": 0},
     {"server_no_context_takeover": True, "client_no_context_takeover": True,
      "server_max_window_bits": 9, "client_max_window_bits": 9}),
    ({"threshold": 0}, {"threshold": 0, "max_window_bits": 12, "server_no_context_takeover": True,
                        "client_no_context_takeover": True, "level": 9},
     {"server_no_context_takeover": True, "client_no_context_takeover": True,
      "server_max_window_bits": 12, "client_max_window_bits": 12}),
    ({"threshold": 0}, {"threshold": 0, "max_window_bits": 8, "level": 1},
     {"server_max_window_bits": 8, "client_max_window_bits": 8}),
]


@pytest.mark.parametrize("theirs,ours,agreed", SERVER_CASES, ids=[str(i) for i in range(len(SERVER_CASES))])
def test_tycho_client_against_node_server(node_dir, theirs, ours, agreed):
    p, port = node_server(node_dir, theirs)
    try:
        out = tycho_client(port, ours)
        assert out["node_params"] == agreed
        if agreed is None:
            assert out["extensions"] is None
        else:
            assert out["extensions"].startswith("permessage-deflate")
    finally:
        p.kill()
        p.wait(timeout=10)
        p.stdout.close()
        p.stderr.close()
