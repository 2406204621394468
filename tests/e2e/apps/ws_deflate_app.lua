-- The app the permessage-deflate end-to-end tests talk to
-- (test_ws_deflate*.py). /echo echoes with the extension on (defaults);
-- /custom takes the extension's options from the query (bits, snct, cnct,
-- threshold, max); /plain has it off. /stats reports the close codes the
-- handlers saw.
local http = require "tycho.http"

local app = http.router()
local stats = { closes = {} }

local function echo(ws)
  while true do
    local data, kind, code = ws:receive()
    if not data then
      stats.closes[#stats.closes + 1] = code
      return
    end
    ws:send(data, kind)
  end
end

local limits = { max_message = 1024 * 1024, ping_interval = 0, idle_timeout = 60 }

app:websocket("/echo", echo, { max_message = limits.max_message, ping_interval = 0,
  idle_timeout = 60, permessage_deflate = true })
app:websocket("/plain", echo, limits)

app:get("/custom", function(req)
  local q = req.query
  local ws = req:websocket {
    ping_interval = 0,
    idle_timeout = 60,
    max_message = tonumber(q.max),
    permessage_deflate = {
      max_window_bits = tonumber(q.bits),
      server_no_context_takeover = q.snct == "1",
      client_no_context_takeover = q.cnct == "1",
      threshold = tonumber(q.threshold),
    },
  }
  if ws then echo(ws) end
end)

app:get("/stats", function(_, res) res:json(stats) end)

-- A page for test_ws_deflate_browser.py: echoes big text and binary over
-- /echo and writes what it saw into window.result (as JSON).
local PAGE = [[<!doctype html><meta charset="utf-8"><title>deflate</title><script>
const ws = new WebSocket(`ws://${location.host}/echo`);
ws.binaryType = "arraybuffer";
const text = JSON.stringify(Array.from({ length: 4000 }, (_, i) => ({ id: i, v: "ü" + (i % 97) })));
const bin = new Uint8Array(300000).map((_, i) => (i * 31) % 251);
const got = [];
ws.onopen = () => { ws.send(text); ws.send(bin); ws.send("small"); ws.send(text); };
ws.onmessage = (e) => {
  got.push(e.data);
  if (got.length < 4) return;
  const b = new Uint8Array(got[1]);
  window.result = JSON.stringify({
    extensions: ws.extensions,
    text: got[0] === text && got[3] === text,
    binary: b.length === bin.length && b.every((x, i) => x === bin[i]),
    small: got[2] === "small",
  });
  ws.close(1000);
};
ws.onerror = () => { window.result = JSON.stringify({ error: true }); };
</script>]]

app:get("/page", function(_, res)
  res:header("Content-Type", "text/html; charset=utf-8")
  return PAGE
end)

local srv = assert(http.serve { port = 0, handler = app })
io.stderr:write(("listening on http://%s:%d\n"):format(srv.host, srv.port))
io.stderr:flush()
srv:wait_closed()
