"""Tycho's WebSocket server as Python's `websockets` (Debian
python3-websockets) sees it: echo, fragmentation, ping/pong, close codes,
invalid UTF-8, oversize messages, abrupt disconnects, subprotocols, idle
timeout and back-pressure; handshake errors seen by http.client."""
import asyncio
import http.client
import json
import os
import time

import pytest
import websockets
from websockets.frames import Opcode

from ws_support import ScriptServer as Server

APP = os.path.join(os.path.dirname(__file__), "apps", "ws_app.lua")


@pytest.fixture(scope="module")
def srv():
    with Server(APP) as s:
        yield s
        s.stop_checked((0, 143, -15))  # SIGTERM: teardown closes every websocket


def url(srv, path):
    return f"ws://{srv.host}:{srv.port}{path}"


def run(coro):
    return asyncio.run(asyncio.wait_for(coro, 30))


def stats(srv):
    c = http.client.HTTPConnection(srv.host, srv.port, timeout=10)
    c.request("GET", "/stats")
    body = json.loads(c.getresponse().read())
    c.close()
    return body


def wait_for_close(srv, code, timeout=10):
    """Polls /stats (bounded) until the server recorded a close with code."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if any(c["code"] == code for c in stats(srv)["closes"]):
            return True
        time.sleep(0.02)
    return False


def test_echo_text_and_binary(srv):
    async def go():
        async with websockets.connect(url(srv, "/echo")) as ws:
            await ws.send("héllo wörld ✓")
            assert await ws.recv() == "héllo wörld ✓"
            await ws.send(bytes(range(256)))
            assert await ws.recv() == bytes(range(256))
            await ws.send("")
            assert await ws.recv() == ""
            for i in range(100):
                await ws.send(f"m{i}")
            assert [await ws.recv() for _ in range(100)] == [f"m{i}" for i in range(100)]
    run(go())


def test_large_fragmented_messages(srv):
    part = "x" * 65536
    async def go():
        async with websockets.connect(url(srv, "/echo"), max_size=2 ** 22) as ws:
            await ws.send([part] * 12)  # one message in 12 frames: 768 KiB
            got = await ws.recv()
            assert got == part * 12
            blob = os.urandom(900_000)
            await ws.send([blob[i:i + 100_000] for i in range(0, len(blob), 100_000)])
            assert await ws.recv() == blob
    run(go())


def test_control_frames_inside_a_fragmented_message(srv):
    async def go():
        async with websockets.connect(url(srv, "/echo")) as ws:
            await ws.write_frame(False, Opcode.TEXT, b"first ")
            pong = await ws.ping(b"between fragments")
            await ws.write_frame(False, Opcode.CONT, b"second ")
            await ws.write_frame(True, Opcode.CONT, b"third")
            await asyncio.wait_for(pong, 5)
            assert await ws.recv() == "first second third"
    run(go())


def test_client_ping_gets_pong(srv):
    async def go():
        async with websockets.connect(url(srv, "/echo")) as ws:
            for i in range(5):
                waiter = await ws.ping(f"p{i}".encode())
                await asyncio.wait_for(waiter, 5)
    run(go())


def test_server_ping_is_answered(srv):
    async def go():
        async with websockets.connect(url(srv, "/ping")) as ws:
            msg = await ws.recv()
            assert msg.startswith("pong "), msg
            assert 0 <= float(msg.split()[1]) < 5
    run(go())


def test_server_close_code_and_reason(srv):
    async def go():
        async with websockets.connect(url(srv, "/close")) as ws:
            await ws.send("4001 going home")
            with pytest.raises(websockets.ConnectionClosed):
                await ws.recv()
            assert ws.close_code == 4001
            assert ws.close_reason == "going home"
    run(go())


def test_client_close_code_reaches_handler(srv):
    async def go():
        ws = await websockets.connect(url(srv, "/echo"))
        await ws.send("x")
        await ws.recv()
        await ws.close(4002, "client done")
        assert ws.close_code == 4002  # the server echoed it
    run(go())
    assert wait_for_close(srv, 4002)
    assert any(c == {"code": 4002, "reason": "client done"} for c in stats(srv)["closes"])


def test_invalid_utf8_closes_with_1007(srv):
    async def go():
        async with websockets.connect(url(srv, "/echo")) as ws:
            await ws.write_frame(True, Opcode.TEXT, b"ok \xff\xfe not utf-8")
            with pytest.raises(websockets.ConnectionClosed):
                await ws.recv()
            assert ws.close_code == 1007
    run(go())
    assert wait_for_close(srv, 1007)


def test_oversize_message_closes_with_1009(srv):
    async def go():
        async with websockets.connect(url(srv, "/echo")) as ws:
            await ws.send("y" * (1024 * 1024 + 1))  # the route allows 1 MiB
            with pytest.raises(websockets.ConnectionClosed):
                await ws.recv()
            assert ws.close_code == 1009
    run(go())
    assert wait_for_close(srv, 1009)


def test_oversize_fragmented_message_closes_with_1009(srv):
    async def go():
        async with websockets.connect(url(srv, "/echo")) as ws:
            with pytest.raises(websockets.ConnectionClosed):
                # each frame fits, the sum does not; the close may come mid-send
                await ws.send([b"a" * 300_000] * 4)
                await ws.recv()
            assert ws.close_code == 1009
    run(go())


def test_abrupt_disconnect_ends_the_handler_with_1006(srv):
    before = stats(srv)["ws_open"]
    async def go():
        ws = await websockets.connect(url(srv, "/echo"))
        await ws.send("hi")
        await ws.recv()
        ws.transport.abort()  # RST-like: no close frame
    run(go())
    assert wait_for_close(srv, 1006)
    deadline = time.monotonic() + 10
    while stats(srv)["ws_open"] != before and time.monotonic() < deadline:
        time.sleep(0.02)
    assert stats(srv)["ws_open"] == before


def test_many_abrupt_disconnects_leave_the_server_serving(srv):
    async def go():
        conns = [await websockets.connect(url(srv, "/echo")) for _ in range(30)]
        for ws in conns:
            await ws.send("x" * 1000)
        for ws in conns:
            ws.transport.abort()
        async with websockets.connect(url(srv, "/echo")) as ws:
            await ws.send("still here")
            assert await ws.recv() == "still here"
    run(go())


def test_subprotocol_negotiation(srv):
    async def go():
        async with websockets.connect(url(srv, "/proto"), subprotocols=["chat.v0", "chat.v1"]) as ws:
            assert ws.subprotocol == "chat.v1"
            assert await ws.recv() == "protocol=chat.v1"
        async with websockets.connect(url(srv, "/proto")) as ws:
            assert ws.subprotocol is None
            assert await ws.recv() == "protocol=nil"
    run(go())


def test_idle_timeout_closes(srv):
    async def go():
        async with websockets.connect(url(srv, "/idle"), ping_interval=None) as ws:
            t0 = time.monotonic()
            with pytest.raises(websockets.ConnectionClosed):
                await ws.recv()
            assert ws.close_code == 1001
            assert time.monotonic() - t0 < 5
    run(go())


def test_back_pressure_with_a_slow_reader(srv):
    async def go():
        async with websockets.connect(url(srv, "/flood"), max_queue=1) as ws:
            await ws.send("150")
            total = 0
            while True:
                msg = await ws.recv()
                if msg == "done":
                    break
                total += len(msg)
                if total % (64 * 1024 * 30) == 0:
                    await asyncio.sleep(0.05)  # read slowly now and then
            assert total == 150 * 64 * 1024
    run(go())


def handshake(srv, headers, path="/echo", method="GET"):
    c = http.client.HTTPConnection(srv.host, srv.port, timeout=10)
    c.request(method, path, headers=headers)
    r = c.getresponse()
    out = (r.status, dict((k.lower(), v) for k, v in r.getheaders()), r.read())
    c.close()
    return out


GOOD = {"Upgrade": "websocket", "Connection": "Upgrade",
        "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ==", "Sec-WebSocket-Version": "13"}


def test_handshake_accept_key_from_the_rfc(srv):
    status, headers, _ = handshake(srv, GOOD)
    assert status == 101
    assert headers["sec-websocket-accept"] == "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="
    assert headers["upgrade"].lower() == "websocket"


@pytest.mark.parametrize("change,status", [
    ({"Upgrade": None, "Connection": None}, 426),
    ({"Sec-WebSocket-Version": "8"}, 426),
    ({"Sec-WebSocket-Key": "short"}, 400),
    ({"Sec-WebSocket-Key": None}, 400),
    ({"Connection": "keep-alive"}, 400),
])
def test_bad_handshakes_are_refused(srv, change, status):
    headers = {k: v for k, v in {**GOOD, **change}.items() if v is not None}
    got, hdrs, body = handshake(srv, headers)
    assert got == status, body
    if status == 426:
        assert hdrs["sec-websocket-version"] == "13"
    async def go():  # and the server still serves
        async with websockets.connect(url(srv, "/echo")) as ws:
            await ws.send("ok")
            assert await ws.recv() == "ok"
    run(go())


def test_upgrade_request_to_a_plain_route_gets_its_answer_then_a_close(srv):
    import socket
    with socket.create_connection((srv.host, srv.port), timeout=10) as s:
        s.sendall(b"GET /stats HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                  b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
                  b"GET /stats HTTP/1.1\r\nHost: x\r\n\r\n")  # not served: no more HTTP after it
        out = b""
        while True:
            chunk = s.recv(65536)
            if not chunk:
                break
            out += chunk
    assert out.startswith(b"HTTP/1.1 200 OK")
    assert out.count(b"HTTP/1.1 ") == 1
