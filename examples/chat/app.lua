-- A chat room: `tycho run examples/chat/app.lua`, then open
-- http://127.0.0.1:8080/ in two browser tabs. One WebSocket per tab; every
-- message is broadcast to everyone in the room as JSON.
--   client -> server: {"type":"join","name":"ada"}, {"type":"say","text":"hi"}
--   server -> client: {"type":"joined"|"left","name":...,"count":N},
--                     {"type":"message","from":"ada","text":"hi"}
local tycho = require "tycho"
local http = require "tycho.http"
local json = require "tycho.json"

local here = debug.getinfo(1, "S").source:match("^@(.*)/[^/]*$") or "."
local app = http.router()
local room = {} -- ws -> name
local count = 0

-- Sends to every member. ws:send only waits when a client has more than
-- 256 KiB unsent; a client that far behind is skipped rather than letting
-- it hold up the whole room.
local function broadcast(msg)
  local text = json.encode(msg)
  for ws in pairs(room) do
    if ws.buffered < 256 * 1024 then ws:send(text) end
  end
end

app:websocket("/ws", function(ws)
  local first = ws:receive()
  local ok, hello = pcall(json.decode, first or "")
  if not ok or type(hello) ~= "table" or hello.type ~= "join" or type(hello.name) ~= "string" then
    return ws:close(1008, "first message must be a join")
  end
  local name = hello.name:sub(1, 40)
  room[ws] = name
  count = count + 1
  broadcast { type = "joined", name = name, count = count }
  while true do
    local data = ws:receive()
    if not data then break end
    local okm, msg = pcall(json.decode, data)
    if okm and type(msg) == "table" and msg.type == "say" and type(msg.text) == "string" then
      broadcast { type = "message", from = name, text = msg.text:sub(1, 2000) }
    end
  end
  room[ws] = nil
  count = count - 1
  broadcast { type = "left", name = name, count = count }
end, { max_message = 16 * 1024 })

app:get("/count", function() return { count = count } end)

-- The page and its script.
local files = http.static(here .. "/public")
app:get("/", files)
app:get("/*file", files)

return app
