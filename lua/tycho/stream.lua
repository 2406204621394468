--- tycho.stream: one awaiting stream object over a luv stream handle (TCP,
--- Unix pipe, child-process pipe). Reads are buffered and pulled: the handle
--- reads only while a task wants data and the buffer is under its high-water
--- mark, so a slow reader leaves bytes in the kernel and the peer slows down.
--- Writes await while the handle's write queue is over its high-water mark,
--- so a fast writer cannot queue unbounded memory for a slow peer.
---
--- The object the user holds is a small proxy; libuv callbacks only see the
--- state table behind it. When the proxy is collected (or goes out of scope
--- as a `<close>` variable) the handle is closed, so a forgotten stream does
--- not leak its file descriptor.
local core = require "tycho.core"
local uv = require "luv"
local check = require "tycho.check"

local token, park, wake = core.token, core.park, core.wake

local M = {}

-- Defaults, overridable per stream with stream:set_limits{}.
M.READ_HIGH_WATER = 64 * 1024  -- stop reading from the kernel above this
M.WRITE_HIGH_WATER = 64 * 1024 -- writers await above this many queued bytes
M.MAX_LINE = 64 * 1024         -- read_line gives up on longer lines

local Stream = {}
Stream.__index = Stream
M.Stream = Stream

local function err_code(err)
  return tostring(err):match("^(%u[%u%d_]*):") or "EIO"
end

-- luv hands callbacks a bare error name ("ECONNREFUSED"); give the common
-- ones libuv's wording so every message reads "CODE: what happened".
local MESSAGES = {
  ECONNREFUSED = "connection refused", ECONNRESET = "connection reset by peer",
  EPIPE = "broken pipe", ETIMEDOUT = "connection timed out",
  ENOENT = "no such file or directory", EADDRINUSE = "address already in use",
  EACCES = "permission denied", ECANCELED = "operation canceled",
  ENOTCONN = "socket is not connected", EHOSTUNREACH = "host is unreachable",
  ENETUNREACH = "network is unreachable", EAI_NONAME = "unknown node or service",
  EOF = "end of file", ECONNABORTED = "software caused connection abort",
}

---Turns a luv error string into the `nil, message, code` triple.
function M.fail(err)
  err = tostring(err)
  if err:match("^%u[%u%d_]*$") then
    return nil, err .. ": " .. (MESSAGES[err] or "operation failed"), err
  end
  return nil, err, err_code(err)
end
local fail = M.fail

local CLOSED = "ECLOSED: stream is closed"
local TIMEDOUT = "ETIMEDOUT: operation timed out"

-- ---------------------------------------------------------------------
-- Waiting with an optional timeout

-- Parks the current task until wake(co, tok, ...) or `seconds` pass; on
-- timeout the task wakes with "timeout". `on_cancel` undoes the caller's
-- registration if the task is cancelled while parked.
local function wait(co, tok, seconds, on_cancel)
  local timer
  if seconds then
    timer = uv.new_timer()
    uv.update_time()
    timer:start(math.max(0, math.ceil(seconds * 1000)), 0, function()
      wake(co, tok, "timeout")
    end)
  end
  local function stop_timer()
    if timer and not timer:is_closing() then timer:close() end
  end
  local r = table.pack(park(function()
    stop_timer()
    if on_cancel then on_cancel() end
  end))
  stop_timer()
  return table.unpack(r, 1, r.n)
end
M.wait = wait

-- ---------------------------------------------------------------------
-- State and the read side

local function new_state(handle, kind)
  local s = {
    h = handle,
    kind = kind,     -- "tcp", "pipe"
    buf = "",        -- unread bytes are buf:sub(pos), then the pieces in more
    pos = 1,
    more = {},       -- pieces read since the last flatten (no quadratic concat)
    nmore = 0,
    eof = false,
    err = nil,       -- a read error, reported once the buffer is drained
    reading = false,
    closed = false,
    rco = nil,       -- the task waiting for data
    rtok = nil,
    timeout = nil,
    read_hwm = M.READ_HIGH_WATER,
    write_hwm = M.WRITE_HIGH_WATER,
    max_line = M.MAX_LINE,
  }
  s.on_read = function(err, data)
    if err then
      s.err, s.eof = err, true
    elseif data then
      s.more[#s.more + 1] = data
      s.nmore = s.nmore + #data
      if #s.buf - s.pos + 1 + s.nmore >= s.read_hwm then s.reading = false; s.h:read_stop() end
    else
      s.eof = true
    end
    if s.eof and s.reading then s.reading = false; s.h:read_stop() end
    local co, tok = s.rco, s.rtok
    if co then
      s.rco, s.rtok = nil, nil
      wake(co, tok)
    end
  end
  return s
end

local function buffered(s) return #s.buf - s.pos + 1 + s.nmore end

-- Joins the unread bytes into s.buf (from s.pos = 1).
local function flatten(s)
  if s.nmore == 0 then return end
  s.buf = s.buf:sub(s.pos) .. table.concat(s.more)
  s.pos, s.more, s.nmore = 1, {}, 0
end

-- Seconds a closed stream may take to hand its queued bytes to a peer that
-- is slow to read, before it is closed anyway.
local LINGER_SECONDS = 10

-- Closes the handle; bytes still queued for writing go out first (as Node's
-- end() does), so `write(...); close()` loses nothing.
local function close_handle(h)
  if h:is_closing() then return end
  if h:get_write_queue_size() == 0 or not h:is_writable() then
    h:close()
    return
  end
  local timer = uv.new_timer()
  local function done()
    if not timer:is_closing() then timer:close() end
    if not h:is_closing() then h:close() end
  end
  timer:start(LINGER_SECONDS * 1000, 0, done)
  timer:unref()
  if not h:shutdown(done) then done() end
end

local function close_state(s)
  if s.closed then return end
  s.closed = true
  close_handle(s.h)
  local co, tok = s.rco, s.rtok
  if co then
    s.rco, s.rtok = nil, nil
    wake(co, tok, "closed")
  end
end
M.close_state = close_state

-- Waits until more bytes arrive, EOF, an error, a timeout or close.
-- Returns nil on progress, or an error message.
local function fill(s)
  if s.closed then return CLOSED end
  if s.eof then return nil end
  if s.rco then error("another task is already reading this stream", 3) end
  if not s.reading then
    local ok, err = s.h:read_start(s.on_read)
    if not ok then
      s.err, s.eof = err, true
      return nil
    end
    s.reading = true
  end
  local co, tok = token()
  s.rco, s.rtok = co, tok
  local why = wait(co, tok, s.timeout, function() s.rco, s.rtok = nil, nil end)
  if why == "timeout" then
    s.rco, s.rtok = nil, nil
    return TIMEDOUT
  elseif why == "closed" then
    return CLOSED
  end
  return nil
end

local function take(s, n)
  if n > #s.buf - s.pos + 1 then flatten(s) end
  local out = s.buf:sub(s.pos, s.pos + n - 1)
  s.pos = s.pos + #out
  if s.pos > #s.buf then s.buf, s.pos = "", 1 end
  return out
end

-- At the end of the data: nil for a clean EOF, else the read error.
local function at_end(s)
  if s.err then return fail(s.err) end
  if s.closed then return fail(CLOSED) end
  return nil
end

local function state(self, fname)
  local s = self._s
  if s.closed then
    error(("bad argument #1 to '%s' (stream is closed)"):format(fname), 3)
  end
  return s
end

---Reads what is available, waiting only when nothing is: up to `n` bytes
---(default: everything buffered). Returns nil at end of stream, or nil,
---message, code on failure. Yields.
---@param n? integer
---@return string? data, string? err, string? code
function Stream:read(n)
  local s = state(self, "read")
  check.opt(1, "read", n, "number")
  if n and n < 1 then error("bad argument #1 to 'read' (positive number expected)", 2) end
  while buffered(s) == 0 do
    if s.eof then return at_end(s) end
    local err = fill(s)
    if err then return fail(err) end
  end
  return take(s, n or buffered(s))
end

---Reads exactly `n` bytes. At end of stream before `n` bytes it returns
---nil, "EOF: ...", "EOF" and the bytes stay unread. Yields.
---@param n integer
function Stream:read_exactly(n)
  local s = state(self, "read_exactly")
  check.arg(1, "read_exactly", n, "number")
  if n < 1 then error("bad argument #1 to 'read_exactly' (positive number expected)", 2) end
  while buffered(s) < n do
    if s.eof then
      if s.err or s.closed then return at_end(s) end
      return nil, ("EOF: stream ended after %d of %d bytes"):format(buffered(s), n), "EOF"
    end
    local err = fill(s)
    if err then return fail(err) end
  end
  return take(s, n)
end

---Reads up to and without the next "\n" (a "\r" before it is dropped too).
---At end of stream returns the last unterminated line, then nil. Yields.
---@return string? line, string? err, string? code
function Stream:read_line()
  local s = state(self, "read_line")
  local scanned = 0 -- bytes after s.pos already known to hold no "\n"
  while true do
    flatten(s)
    local nl = s.buf:find("\n", s.pos + scanned, true)
    if nl then
      local line = take(s, nl - s.pos + 1)
      return (line:gsub("\r?\n$", ""))
    end
    if buffered(s) > s.max_line then
      return nil, "ELINETOOLONG: line longer than " .. s.max_line .. " bytes", "ELINETOOLONG"
    end
    if s.eof then
      if buffered(s) > 0 then return take(s, buffered(s)) end
      return at_end(s)
    end
    scanned = buffered(s)
    local err = fill(s)
    if err then return fail(err) end
  end
end

---Iterates over the stream's lines: `for line in conn:lines() do ... end`.
function Stream:lines()
  return function()
    local line, err = self:read_line()
    if err then error(err, 2) end
    return line
  end
end

-- ---------------------------------------------------------------------
-- The write side

---Queues `data` for writing. Returns the stream, or nil, message, code.
---Awaits while more than the write high-water mark is queued (back-pressure).
---@param data string
function Stream:write(data)
  local s = state(self, "write")
  check.arg(1, "write", data, "string")
  if s.werr then return fail(s.werr) end
  local waiting
  local req, err = s.h:write(data, function(werr)
    if werr and not s.werr then s.werr = werr end
    if waiting then wake(waiting[1], waiting[2], werr) end
  end)
  if not req then
    s.werr = err
    return fail(err)
  end
  if s.h:get_write_queue_size() <= s.write_hwm then return self end
  local co, tok = token()
  waiting = { co, tok }
  local why = wait(co, tok, s.timeout, function() waiting = nil end)
  waiting = nil
  if why == "timeout" then return fail(TIMEDOUT) end
  if why then return fail(why) end
  return self
end

---Bytes queued in the kernel-facing write queue right now.
function Stream:write_queue_size()
  return state(self, "write_queue_size").h:get_write_queue_size()
end

---Finishes the write side (the peer reads EOF) once queued data is out.
---Yields. Returns true or nil, message, code.
function Stream:shutdown()
  local s = state(self, "shutdown")
  local co, tok = token()
  local ok, err = s.h:shutdown(function(serr) wake(co, tok, serr or false) end)
  if not ok then return fail(err) end
  local why = wait(co, tok, s.timeout)
  if why == "timeout" then return fail(TIMEDOUT) end
  if why then return fail(why) end
  return true
end

---Closes the stream. Idempotent; a task waiting to read gets an error.
function Stream:close()
  close_state(self._s)
end

---True once the stream is closed.
function Stream:is_closed()
  return self._s.closed
end

---Sets a timeout in seconds for each read, write wait and shutdown (nil:
---wait forever). Returns the stream.
---@param seconds? number
function Stream:set_timeout(seconds)
  check.opt(1, "set_timeout", seconds, "number")
  self._s.timeout = seconds
  return self
end

---Overrides the buffer limits: `{read_high_water=, write_high_water=, max_line=}`.
function Stream:set_limits(opts)
  check.arg(1, "set_limits", opts, "table")
  local s = self._s
  s.read_hwm = opts.read_high_water or s.read_hwm
  s.write_hwm = opts.write_high_water or s.write_hwm
  s.max_line = opts.max_line or s.max_line
  return self
end

-- ---------------------------------------------------------------------
-- Socket options and addresses

local function tcp_only(self, fname)
  local s = state(self, fname)
  if s.kind ~= "tcp" then
    error(("bad argument #1 to '%s' (TCP stream expected)"):format(fname), 3)
  end
  return s
end

---Disables (default) or enables Nagle's algorithm on a TCP stream.
function Stream:set_nodelay(on)
  local s = tcp_only(self, "set_nodelay")
  s.h:nodelay(on ~= false)
  return self
end

---Enables TCP keep-alive probes after `delay` idle seconds (default 60),
---or disables them with `false`.
function Stream:set_keepalive(on, delay)
  local s = tcp_only(self, "set_keepalive")
  s.h:keepalive(on ~= false, delay or 60)
  return self
end

local function address(s, which)
  if s.kind == "tcp" then
    local a, err = s.h[which](s.h)
    if not a then return fail(err) end
    return { host = a.ip, port = a.port, family = a.family }
  end
  local path, err = s.h[which == "getsockname" and "getsockname" or "getpeername"](s.h)
  if not path then return fail(err) end
  return { path = path }
end

---This end's address: `{host=, port=, family=}` (TCP) or `{path=}` (Unix).
function Stream:local_address()
  return address(state(self, "local_address"), "getsockname")
end

---The peer's address, like local_address.
function Stream:remote_address()
  return address(state(self, "remote_address"), "getpeername")
end

---Lets the process exit while this stream is open (`:ref()` undoes it).
function Stream:unref()
  state(self, "unref").h:unref()
  return self
end

function Stream:ref()
  state(self, "ref").h:ref()
  return self
end

function Stream:__close() close_state(self._s) end

function Stream:__gc()
  local s = self._s
  if not s.closed then pcall(close_state, s) end
end

function Stream:__tostring()
  return ("stream<%s%s>"):format(self._s.kind, self._s.closed and " closed" or "")
end

---Wraps a luv stream handle (`kind` "tcp" or "pipe") in a stream object
---that owns it.
---@param handle userdata
---@param kind string
function M.wrap(handle, kind)
  return setmetatable({ _s = new_state(handle, kind) }, Stream)
end

return M
