"""Process teardown with websockets open: os.exit with server and client
websockets in flight, and SIGTERM to `tycho run` while a browser-like client
is connected (it gets 1001 and the process exits 0). Run with an ASan build
as TYCHO, these also check for leaks."""
import asyncio
import os
import signal
import subprocess
import tempfile

import websockets

from conftest import TYCHO
from tycho_server import Server

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

SCRIPT = r"""
local tycho = require "tycho"
local http = require "tycho.http"
local app = http.router()
local open = 0
app:websocket("/ws", function(ws)
  open = open + 1
  while ws:receive() do end
end)
local srv = assert(http.serve { port = 0, handler = app })
local clients = {}
for i = 1, 20 do
  clients[i] = assert(tycho.ws.connect("ws://127.0.0.1:" .. srv.port .. "/ws"))
  clients[i]:send(("x"):rep(i * 1000))
end
tycho.spawn(function() clients[1]:receive() end) -- a task parked on a client
while open < 20 do tycho.sleep(0.001) end
print("open " .. open .. " " .. srv.connections)
os.exit(0)
"""


def clean(stderr):
    return ("Sanitizer" not in stderr and "runtime error" not in stderr
            and "handles still open" not in stderr)


def test_exit_with_websockets_open():
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as f:
        f.write(SCRIPT)
    try:
        p = subprocess.run([TYCHO, f.name], capture_output=True, text=True, timeout=60)
    finally:
        os.unlink(f.name)
    assert p.returncode == 0, p.stderr
    assert p.stdout.strip() == "open 20 20"
    assert clean(p.stderr), p.stderr


def test_sigterm_sends_going_away_and_exits_0():
    with Server(os.path.join(ROOT, "examples", "chat", "app.lua")) as srv:
        async def go():
            ws = await websockets.connect(f"ws://{srv.host}:{srv.port}/ws")
            await ws.send('{"type":"join","name":"last"}')
            await ws.recv()  # joined: the handler runs
            srv.signal(signal.SIGTERM)
            try:
                while True:
                    await asyncio.wait_for(ws.recv(), 20)
            except websockets.ConnectionClosed:
                pass
            return ws.close_code
        assert asyncio.run(go()) == 1001
        assert srv.wait() == 0
        assert clean(srv.stderr.decode()), srv.stderr.decode()
