"""permessage-deflate with headless Chromium: the browser offers the
extension itself; a page served by Tycho echoes large text, binary and a
small message over a compressed connection and reports what it saw."""
import asyncio
import json

import websockets

from test_ws_chat import Chromium, evaluate
from test_ws_deflate import srv  # noqa: F401 (the app's fixture) pylint: disable=unused-import


def test_chromium_negotiates_and_echoes(srv):
    async def go():
        browser = Chromium(f"http://{srv.host}:{srv.port}/page")
        try:
            async with websockets.connect(browser.page_ws_url(), max_size=None) as cdp:
                for _ in range(600):  # bounded: 30 s
                    result = await evaluate(cdp, "window.result || null")
                    if result:
                        return json.loads(result)
                    await asyncio.sleep(0.05)
                raise AssertionError("the page never finished")
        finally:
            browser.close()

    out = asyncio.run(asyncio.wait_for(go(), 90))
    # Chromium offers "permessage-deflate; client_max_window_bits"; we answer
    # with no parameter and it reports what we answered
    assert out == {"extensions": "permessage-deflate", "text": True, "binary": True,
                   "small": True}, out
