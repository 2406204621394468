-- The app the WebSocket and SSE end-to-end tests talk to (test_ws*.py,
-- test_sse*.py). /stats reports what the handlers saw, so tests can check
-- the server side of a close or a disconnect. It serves itself (rather
-- than returning the router to `tycho run`) and prints the line the tests'
-- Server helper waits for.
local tycho = require "tycho"
local http = require "tycho.http"

local app = http.router()
local stats = { closes = {}, sse_open = 0, sse_ended = 0, ws_open = 0 }

local function record_close(code, reason)
  stats.closes[#stats.closes + 1] = { code = code, reason = reason }
end

-- Echoes every message back with the same type, until the peer closes.
app:websocket("/echo", function(ws)
  stats.ws_open = stats.ws_open + 1
  while true do
    local data, kind, code, reason = ws:receive()
    if not data then
      stats.ws_open = stats.ws_open - 1
      return record_close(code, reason)
    end
    ws:send(data, kind)
  end
end, { max_message = 1024 * 1024, ping_interval = 0, idle_timeout = 60 })

-- Closes with the code and reason the first message asks for: "4001 bye".
app:websocket("/close", function(ws)
  local data = ws:receive()
  local code, reason = data:match("^(%d+) ?(.*)$")
  ws:close(tonumber(code), reason)
end)

-- Pings the client and reports the round trip as a text message.
app:websocket("/ping", function(ws)
  local rtt, err = ws:ping("are you there")
  ws:send(rtt and ("pong %.6f"):format(rtt) or ("no pong: " .. tostring(err)))
  ws:receive()
end)

-- Subprotocol negotiation: reports the chosen one.
app:websocket("/proto", function(ws)
  ws:send("protocol=" .. tostring(ws.protocol))
  ws:receive()
end, { protocols = { "chat.v2", "chat.v1" } })

-- A plain handler using req:websocket directly, with a tiny idle timeout.
app:get("/idle", function(req)
  local ws, err, status = req:websocket { idle_timeout = 0.3, ping_interval = 0 }
  if not ws then return end
  local data, kind, code, reason = ws:receive()
  record_close(code, reason)
end)

-- Sends n messages as fast as the client takes them (back-pressure).
app:websocket("/flood", function(ws)
  local n = tonumber((ws:receive()))
  local chunk = ("z"):rep(64 * 1024)
  for i = 1, n do
    if not ws:send(chunk, "binary") then return end
  end
  ws:send("done")
  ws:receive()
end)

app:get("/stats", function(_, res) res:json(stats) end)

app:post("/stats/reset", function()
  stats.closes = {}
  return "ok"
end)

-- SSE: events numbered after Last-Event-ID; `count` of them, then the
-- stream ends (the client reconnects for more).
app:get("/events", function(req, res)
  local last = tonumber((req:header("last-event-id"))) or 0
  local count = tonumber(req.query.count) or 3
  local stream = res:sse { heartbeat = false }
  for i = last + 1, last + count do
    stream:send { event = "tick", id = tostring(i), data = "event " .. i .. "\nsecond line" }
  end
  stream:send { retry = 50, data = "bye" }
  stream:close()
end)

-- SSE forever, with heartbeats; counts streams that ended.
app:get("/events/forever", function(_, res)
  stats.sse_open = stats.sse_open + 1
  local _ <close> = setmetatable({}, { __close = function()
    stats.sse_open = stats.sse_open - 1
    stats.sse_ended = stats.sse_ended + 1
  end })
  local stream = res:sse { heartbeat = 0.05 }
  local i = 0
  while true do
    i = i + 1
    stream:send { data = "n=" .. i }
    tycho.sleep(0.2)
  end
end)

local srv = assert(http.serve { port = 0, handler = app })
io.stderr:write(("listening on http://%s:%d\n"):format(srv.host, srv.port))
io.stderr:flush()
srv:wait_closed()
