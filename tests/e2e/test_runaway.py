"""Runaway handlers: `tycho run --cpu-limit MS` stops a handler stuck in a
Lua loop (503, logged, the server goes on); `--memory-limit MB` makes a
handler that allocates without end fail with a 500 instead of the process
dying; handlers that raise, yield forever or leak coroutines cannot take the
process down. Talks to a real server with Python's http.client."""
import http.client
import re
import subprocess

import pytest

from conftest import SANITIZED, TYCHO
from hard_server import Server

APP = r'''
local core = require "tycho.core"
local memory = require "tycho.memory"
local closed, cancelled = 0, 0
return function(req, res)
  local p = req.path
  if p == "/ok" then return "ok" end
  if p == "/spin" then while true do end end
  if p == "/spin_pcall" then
    while true do pcall(function() while true do end end) end
  end
  if p == "/spin_coroutine" then
    local co = coroutine.wrap(function() while true do coroutine.yield() end end)
    while true do co() end
  end
  if p == "/spin_after_write" then
    res:write("partial")
    while true do end
  end
  if p == "/work" then -- about 20 ms of Lua: below the limit
    local t0, x = core.hrtime(), 0
    while core.hrtime() - t0 < 20e6 do x = x + 1 end
    return "worked"
  end
  if p == "/sleepy" then -- 300 ms of waiting, next to no cpu
    for _ = 1, 30 do tycho.sleep(0.01) end
    return "slept"
  end
  if p == "/hog" then
    local t = {}
    for i = 1, math.huge do t[i] = ("x"):rep(1024 * 1024) .. i end
  end
  if p == "/big_string" then return ("x"):rep(512 * 1024 * 1024) end
  if p == "/error" then error("handler bug") end
  if p == "/error_table" then error({ code = 1 }) end
  if p == "/forever" then
    local guard <close> = setmetatable({}, { __close = function() closed = closed + 1 end })
    local ok, err = pcall(core.park)
    if not ok and tostring(err):find("cancel") then cancelled = cancelled + 1 end
    error(err, 0)
  end
  if p == "/leak" then
    for _ = 1, 2000 do
      local co = coroutine.create(function() coroutine.yield() end)
      coroutine.resume(co)
    end
    return "leaked"
  end
  if p == "/stats" then
    local want = tonumber(req.query.closed or "0")
    for _ = 1, 500 do -- the cancel runs on the next loop turn or so
      if closed >= want then break end
      tycho.sleep(0.01)
    end
    collectgarbage()
    return { closed = closed, cancelled = cancelled, kb = collectgarbage("count"),
             memory = memory.stats() }
  end
  return 404, {}, "no"
end
'''


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    s = Server(tmp_path_factory.mktemp("runaway"), APP,
               args=["--cpu-limit", "200", "--memory-limit", "96"])
    yield s
    assert s.stop() == 0
    assert "Sanitizer" not in s.stderr()


def get(server, path="/"):
    return server.get(path)


def stats(server, closed=0):
    import json
    status, body = get(server, f"/stats?closed={closed}")
    assert status == 200
    return json.loads(body)


@pytest.mark.parametrize("path", ["/spin", "/spin_pcall", "/spin_coroutine"])
def test_cpu_limit_stops_a_runaway_handler(server, path):
    status, body = get(server, path)
    assert status == 503
    assert body == b"Service Unavailable\n"
    log = server.stderr()
    assert re.search(r"handler stopped \(cpu limit\): GET " + re.escape(path)
                     + r": .*cpu limit exceeded \(the handler ran for over 200 ms\)", log)
    assert get(server, "/ok") == (200, b"ok")


def test_cpu_limit_after_streaming_started_closes_the_response(server):
    c = http.client.HTTPConnection("127.0.0.1", server.port, timeout=30)
    c.request("GET", "/spin_after_write")
    r = c.getresponse()
    assert r.status == 200
    with pytest.raises(http.client.IncompleteRead):
        r.read()  # the chunked body never gets its last chunk
    c.close()
    assert get(server, "/ok") == (200, b"ok")


def test_cpu_limit_spares_handlers_under_it_and_waiting_ones(server):
    assert get(server, "/work") == (200, b"worked")
    assert get(server, "/sleepy") == (200, b"slept")


def test_memory_limit_fails_the_handler_not_the_process(server):
    before = server.rss_kib()
    status, body = get(server, "/hog")
    assert status == 500 and body == b"Internal Server Error\n"
    assert "handler failed (memory limit): GET /hog: not enough memory" in server.stderr()
    status, _ = get(server, "/big_string")
    assert status == 500
    assert get(server, "/ok") == (200, b"ok")
    s = stats(server)
    assert s["memory"]["limit"] == 96 * 1024 * 1024
    assert s["memory"]["refused"] >= 2
    assert s["memory"]["used"] < 96 * 1024 * 1024
    # The process never held far more than the cap (RSS in KiB). Not under
    # ASan: its shadow memory and quarantine (freed blocks kept) are RSS too.
    assert SANITIZED or server.rss_kib() < before + 160 * 1024


def test_errors_answer_500_and_the_server_goes_on(server):
    assert get(server, "/error")[0] == 500
    assert get(server, "/error_table")[0] == 500
    assert "handler failed: GET /error: " in server.stderr()
    assert get(server, "/ok") == (200, b"ok")


def test_a_handler_parked_forever_is_cancelled_when_the_client_leaves(server):
    base = stats(server)["closed"]
    for _ in range(20):
        c = http.client.HTTPConnection("127.0.0.1", server.port, timeout=5)
        c.request("GET", "/forever")
        c.close()  # leaves without a response
    s = stats(server, closed=base + 20)
    assert s["closed"] == base + 20
    assert s["cancelled"] >= 20
    assert get(server, "/ok") == (200, b"ok")


def test_leaked_coroutines_are_collected(server):
    for _ in range(20):
        assert get(server, "/leak") == (200, b"leaked")
    first = stats(server)["kb"]
    for _ in range(100):
        assert get(server, "/leak") == (200, b"leaked")
    after = stats(server)["kb"]
    assert after < first * 1.5 + 1024, (first, after)


def test_run_refuses_bad_limit_values(tmp_path):
    app = tmp_path / "app.lua"
    app.write_text("return function() return 'ok' end\n")
    r = subprocess.run([TYCHO, "run", str(app), "--cpu-limit", "fast"],
                       capture_output=True, text=True, timeout=30)
    assert r.returncode != 0
    assert "bad value 'fast' for --cpu-limit" in r.stderr
    r = subprocess.run([TYCHO, "run", str(app), "--memory-limit"],
                       capture_output=True, text=True, timeout=30)
    assert r.returncode != 0
    assert "'--memory-limit' needs a value" in r.stderr
