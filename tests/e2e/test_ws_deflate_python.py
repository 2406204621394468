"""permessage-deflate against Python's `websockets` (Debian
python3-websockets, compression="deflate" is its default): its client
against Tycho's server, and Tycho's client against its server, with
window bits and context takeover negotiated both ways."""
import asyncio
import json
import threading

import pytest
import websockets
from websockets.extensions.permessage_deflate import (ClientPerMessageDeflateFactory,
                                                       ServerPerMessageDeflateFactory)

from test_ws_deflate import srv  # noqa: F401 (the app's fixture) pylint: disable=unused-import
from test_ws_deflate_node import tycho_client


def run(coro):
    return asyncio.run(asyncio.wait_for(coro, 60))


async def exchange(uri, **kw):
    """Echoes a mix of messages twice; -> (response extensions header, ok list)."""
    async with websockets.connect(uri, max_size=None, **kw) as ws:
        ext = ws.response_headers.get("Sec-WebSocket-Extensions")
        text = json.dumps([{"id": i, "name": f"star {i % 97}"} for i in range(5000)])
        blob = bytes((i * 31) % 251 for i in range(300000))
        oks = []
        for _ in range(2):
            for msg in (text, blob, "", "small ✓", "é" * 3000):
                await ws.send(msg)
                oks.append(await ws.recv() == msg)
            await ws.send(["frag ", "ment", "ed " * 2000])  # one message, three frames
            oks.append(await ws.recv() == "frag mented " + "ed " * 1999)
        await ws.close(1000)
        return ext, oks, ws.close_code


def test_default_client_against_our_server(srv):
    ext, oks, code = run(exchange(f"ws://{srv.host}:{srv.port}/echo"))
    assert ext == "permessage-deflate"
    assert all(oks) and len(oks) == 12
    assert code == 1000


@pytest.mark.parametrize("bits", [9, 11, 15])  # websockets cannot compress with 8 (zlib refuses -8)
@pytest.mark.parametrize("nct", [False, True], ids=["takeover", "no-takeover"])
def test_client_options_against_our_server(srv, bits, nct):
    factory = ClientPerMessageDeflateFactory(
        server_no_context_takeover=nct, client_no_context_takeover=nct,
        server_max_window_bits=bits, client_max_window_bits=bits)
    ext, oks, code = run(exchange(f"ws://{srv.host}:{srv.port}/custom?threshold=0",
                                  extensions=[factory], compression=None))
    want = "permessage-deflate"
    if nct:
        want += "; server_no_context_takeover; client_no_context_takeover"
    want += f"; server_max_window_bits={bits}"
    if bits < 15:  # 15 is what the client may use anyway
        want += f"; client_max_window_bits={bits}"
    assert ext == want
    assert all(oks) and code == 1000


def test_our_window_limit_is_respected_by_their_client(srv):
    ext, oks, _ = run(exchange(f"ws://{srv.host}:{srv.port}/custom?bits=10&cnct=1"))
    assert ext == ("permessage-deflate; client_no_context_takeover; "
                   "server_max_window_bits=10; client_max_window_bits=10")
    assert all(oks)


class PyServer:
    """websockets' echo server on a thread of its own; "extensions" is
    answered with the header it sent."""

    def __init__(self, **kw):
        self.kw = kw
        self.ready = threading.Event()
        self.thread = threading.Thread(target=lambda: asyncio.run(self._main()), daemon=True)
        self.thread.start()
        assert self.ready.wait(20), "websockets server did not start"

    async def _handler(self, ws, _path=None):
        async for msg in ws:
            if msg == "extensions":
                await ws.send(json.dumps(ws.response_headers.get("Sec-WebSocket-Extensions")))
            else:
                await ws.send(msg)

    async def _main(self):
        self.stop = asyncio.get_running_loop().create_future()
        async with websockets.serve(self._handler, "127.0.0.1", 0, max_size=None, **self.kw) as s:
            self.port = s.sockets[0].getsockname()[1]
            self.loop = asyncio.get_running_loop()
            self.ready.set()
            await self.stop

    def close(self):
        self.loop.call_soon_threadsafe(self.stop.set_result, None)
        self.thread.join(20)


PY_SERVER_CASES = [
    # (websockets server options, our permessage_deflate, its response header)
    # compression="deflate" (the default) asks for 12-bit windows
    ({}, True, "permessage-deflate; server_max_window_bits=12; client_max_window_bits=12"),
    ({}, {"threshold": 0, "max_window_bits": 10, "server_no_context_takeover": True},
     "permessage-deflate; server_no_context_takeover; server_max_window_bits=10; "
     "client_max_window_bits=10"),
    ({"extensions": [ServerPerMessageDeflateFactory(
        server_no_context_takeover=True, client_no_context_takeover=True,
        server_max_window_bits=9, client_max_window_bits=9)], "compression": None},
     {"threshold": 0},
     "permessage-deflate; server_no_context_takeover; client_no_context_takeover; "
     "server_max_window_bits=9; client_max_window_bits=9"),
    ({"compression": None}, True, None),
    ({}, False, None),
]


@pytest.mark.parametrize("theirs,ours,header", PY_SERVER_CASES, ids=[str(i) for i in range(len(PY_SERVER_CASES))])
def test_tycho_client_against_websockets_server(theirs, ours, header):
    s = PyServer(**theirs)
    try:
        out = tycho_client(s.port, ours)
        assert out["node_params"] == header  # the server's own record
        assert out["extensions"] == (header if header else None)
    finally:
        s.close()
