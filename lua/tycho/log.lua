--- tycho.log: the error log and the access log of `tycho run`.
---
--- The error log goes to stderr, one line per event with a UTC timestamp,
--- the level and, under `--workers`, who wrote it:
---   2026-11-26T23:22:34.123Z warn [supervisor] worker 2 (pid 4242) exited ...
--- Levels, quietest last: debug, info, warn, error. `--log-level` (default
--- info) drops the lines below it.
---
--- The access log (off by default, `--access-log PATH|-`) has one line per
--- response, Common Log Format plus latency, Tycho's app generation and the
--- worker:
---   127.0.0.1 - - [26/Nov/2026:23:22:34 +0000] "GET /x?y=1 HTTP/1.1" 200 2 0.000065 gen=1 worker=1
--- Lines are buffered and written at most ACCESS_FLUSH_MS later.
local uv = require "luv"
local check = require "tycho.check"

local M = {}

M.LEVELS = { debug = 10, info = 20, warn = 30, error = 40 }
M.ACCESS_FLUSH_MS = 100

local threshold = M.LEVELS.info
local who = nil -- "supervisor", "worker 3" or nil

---Sets the lowest level written ("debug", "info", "warn" or "error").
---Returns true, or nil and a message for an unknown level.
---@param name string
function M.set_level(name)
  check.arg(1, "set_level", name, "string")
  local n = M.LEVELS[name]
  if not n then return nil, ("unknown log level '%s' (debug, info, warn, error)"):format(name) end
  threshold = n
  return true
end

---The current level's name.
function M.level()
  for name, n in pairs(M.LEVELS) do
    if n == threshold then return name end
  end
end

---Names the writer in every line ("supervisor", "worker 2").
function M.set_source(name)
  who = name
end

local function timestamp()
  local sec, usec = uv.gettimeofday()
  return os.date("!%Y-%m-%dT%H:%M:%S", sec) .. (".%03dZ"):format(usec // 1000)
end

---Formats a line as the error log writes it.
function M.format(level, msg)
  if who then return ("%s %s [%s] %s\n"):format(timestamp(), level, who, msg) end
  return ("%s %s %s\n"):format(timestamp(), level, msg)
end

local function writer(level)
  local n = M.LEVELS[level]
  return function(fmt, ...)
    if n < threshold then return end
    local msg = select("#", ...) > 0 and fmt:format(...) or tostring(fmt)
    io.stderr:write(M.format(level, msg))
    io.stderr:flush()
  end
end

M.debug = writer("debug")
M.info = writer("info")
M.warn = writer("warn")
M.error = writer("error")

-- ---------------------------------------------------------------------
-- Access log

local date_sec, date_str = -1, ""

local function clf_date(sec)
  if sec ~= date_sec then
    date_sec, date_str = sec, os.date("!%d/%b/%Y:%H:%M:%S +0000", sec)
  end
  return date_str
end

-- Quotes and control bytes in the request line would break the format.
local function clean(s)
  if not s:find('[%c"\\]') then return s end
  return (s:gsub('[%c"\\]', function(ch) return ("\\x%02x"):format(ch:byte()) end))
end

---Formats one access log line (what server:set_log's hook receives).
function M.access_line(remote, method, url, minor, status, bytes, ns, gen, worker)
  return ('%s - - [%s] "%s %s HTTP/1.%d" %d %d %.6f gen=%d worker=%s\n'):format(
    remote, clf_date(os.time()), method, clean(url), minor, status, bytes, ns / 1e9,
    gen, worker or "0")
end

-- Writes pending lines in pieces of at most PIPE_BUF bytes cut at line
-- ends: each piece is one write(2), which the kernel keeps whole on a pipe
-- and, with O_APPEND, in a file, so workers sharing a log never interleave
-- mid-line.
local PIECE = 4096

local function write_lines(f, pending)
  local piece, size = {}, 0
  for _, line in ipairs(pending) do
    if size + #line > PIECE and size > 0 then
      f:write(table.concat(piece))
      piece, size = {}, 0
    end
    piece[#piece + 1] = line
    size = size + #line
  end
  if size > 0 then f:write(table.concat(piece)) end
end

---Starts the access log of `server` into `path` ("-" for stdout).
---Returns a log object with :flush() and :close(), or nil, message.
---@param server userdata an http server
---@param path string
---@param worker? integer|string the worker id written in each line
function M.access(server, path, worker)
  local ok, set_log = pcall(function() return server.set_log end)
  if type(server) ~= "userdata" or not ok or type(set_log) ~= "function" then
    error(("bad argument #1 to 'access' (http server expected, got %s)"):format(type(server)), 2)
  end
  check.arg(2, "access", path, "string")
  local f, err
  if path == "-" then
    f = io.stdout
  else
    f, err = io.open(path, "a")
    if not f then return nil, err end
  end
  f:setvbuf("no")
  local pending, bytes = {}, 0
  local timer = uv.new_timer()
  local out = { file = f }
  function out.flush()
    if #pending == 0 then return end
    local lines = pending
    pending, bytes = {}, 0
    write_lines(f, lines)
  end
  function out.close()
    if timer:is_closing() then return end
    timer:close()
    server:set_log(nil)
    out.flush()
    if f ~= io.stdout then f:close() end
  end
  local line = M.access_line
  server:set_log(function(remote, method, url, minor, status, nbytes, ns, gen)
    local l = line(remote, method, url, minor, status, nbytes, ns, gen, worker)
    pending[#pending + 1] = l
    bytes = bytes + #l
    if bytes >= 64 * 1024 then
      out.flush()
    elseif #pending == 1 then
      timer:start(M.ACCESS_FLUSH_MS, 0, out.flush)
    end
  end)
  timer:unref()
  return out
end

return M
