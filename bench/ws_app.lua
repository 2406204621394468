-- The WebSocket benchmark's Tycho server (bench/ws.py): /echo echoes
-- (/echo_deflate with permessage-deflate on);
-- /room joins the room, and a "go" message from any member is broadcast to
-- every member. Prints "port N" once listening.
local http = require "tycho.http"

local app = http.router()
local room = {}

local function echo(ws)
  while true do
    local data, kind = ws:receive()
    if not data then return end
    ws:send(data, kind)
  end
end

app:websocket("/echo", echo, { ping_interval = 0 })
app:websocket("/echo_deflate", echo, { ping_interval = 0, permessage_deflate = true })

app:websocket("/room", function(ws)
  room[ws] = true
  while true do
    local data = ws:receive()
    if not data then break end
    if data == "go" then
      for member in pairs(room) do member:send("tick") end
    end
  end
  room[ws] = nil
end, { ping_interval = 0 })

local srv = assert(http.serve { port = 0, handler = app, max_connections = 30000, backlog = 4096 })
print("port " .. srv.port)
io.stdout:flush()
srv:wait_closed()
