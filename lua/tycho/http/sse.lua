--- tycho.http.sse: Server-Sent Events over a streamed response.
---   local stream = res:sse{heartbeat = 15}
---   stream:send{event = "tick", data = "line 1\nline 2", id = "7", retry = 3000}
--- The handler keeps the stream open as long as it runs; when the client
--- goes away the handler task is cancelled (as for any HTTP request), so a
--- `while true do ... end` loop with awaits in it ends by itself. A client
--- that reconnects sends the last id it saw: req:header("last-event-id").
local check = require "tycho.check"
local uv = require "luv"

local Stream = {}
Stream.__index = Stream

local HEARTBEAT = 15 -- seconds between comment lines, default

-- One field per line; a value with newlines becomes several lines.
local function put_field(out, name, value)
  value = tostring(value)
  if name ~= "data" and value:find("[\r\n]") then
    error(("bad argument #1 to 'send' (%s must not contain a line break)"):format(name), 4)
  end
  for line in (value .. "\n"):gmatch("(.-)\r?\n") do
    out[#out + 1] = name .. ": " .. line .. "\n"
  end
end

-- The text of one event.
local function encode(ev)
  local out = {}
  if ev.event ~= nil then put_field(out, "event", ev.event) end
  if ev.id ~= nil then put_field(out, "id", ev.id) end
  if ev.retry ~= nil then
    if math.type(ev.retry) ~= "integer" or ev.retry < 0 then
      error("bad argument #1 to 'send' (retry must be a non-negative integer)", 3)
    end
    out[#out + 1] = "retry: " .. ev.retry .. "\n"
  end
  if ev.data ~= nil then
    local data = ev.data
    put_field(out, "data", (data:gsub("\r\n", "\n"):gsub("\r", "\n")))
  end
  if #out == 0 then error("bad argument #1 to 'send' (empty event)", 3) end
  out[#out + 1] = "\n"
  return table.concat(out)
end
Stream.encode = encode

---Sends one event: {event=, data=, id=, retry=} or a string (data only).
---Waits while the client reads slower than events are produced.
---@param ev table|string
function Stream:send(ev)
  if type(ev) == "string" then ev = { data = ev } end
  check.arg(1, "send", ev, "table")
  if ev.data ~= nil and type(ev.data) ~= "string" then
    error("bad argument #1 to 'send' (data must be a string)", 2)
  end
  if self.closed then return nil, "closed" end
  self.res:write(encode(ev))
  return true
end

---Sends a comment line (ignored by clients; keeps proxies from timing out).
function Stream:comment(text)
  text = text and tostring(text) or ""
  if text:find("[\r\n]") then error("bad argument #1 to 'comment' (line break)", 2) end
  if self.closed then return nil, "closed" end
  self.res:write(": " .. text .. "\n\n")
  return true
end

---Ends the stream (the response finishes; the client may reconnect).
function Stream:close()
  if self.closed then return end
  self.closed = true
  if self.timer then
    self.timer:stop()
    self.timer:close()
    self.timer = nil
  end
  pcall(self.res.finish, self.res)
end

---Starts the stream on res: status 200, Content-Type text/event-stream,
---no caching. opts.heartbeat: seconds between comment lines (default 15,
---false for none).
---@param res table
---@param opts? {heartbeat?: number|false}
function Stream.new(res, opts)
  check.opt(1, "sse", opts, "table")
  opts = opts or {}
  local every = opts.heartbeat
  if every == nil then every = HEARTBEAT end
  if every ~= false and (type(every) ~= "number" or every <= 0) then
    error("bad argument #1 to 'sse' (heartbeat must be a positive number or false)", 2)
  end
  res:header("Content-Type", "text/event-stream")
  res:header("Cache-Control", "no-cache")
  res:header("X-Accel-Buffering", "no")
  res:write(": stream\n\n") -- the head goes out now; clients see the open
  local self = setmetatable({ res = res, closed = false }, Stream)
  if every then
    local ms = math.max(1, math.floor(every * 1000))
    local timer = uv.new_timer()
    timer:unref() -- a heartbeat alone does not keep the process alive
    timer:start(ms, ms, function()
      -- The request may be over (client gone, handler ended): stop then.
      if self.closed or not pcall(res.write, res, ": heartbeat\n\n") then
        self.closed = true
        if not timer:is_closing() then timer:close() end
        self.timer = nil
      end
    end)
    self.timer = timer
  end
  return self
end

return Stream
