--- tycho.thread: CPU-bound Lua off the event loop, and the loop watchdog.
---
--- `run` executes a function on libuv's thread pool in a separate Lua state
--- (src/thread/pool.c) while the calling task waits and the loop keeps
--- serving; arguments and results are copied (src/thread/copy.c).
--- `watchdog` starts the thread that names Lua code blocking the loop
--- (src/thread/watchdog.c). See docs/thread.md.
local core = require "tycho.thread.core"
local watchdog = require "tycho.thread.watchdog"
local check = require "tycho.check"

local M = {}

-- Called in tail position, so level 2 is the caller of M.run.
local function finish(ok, ...)
  if ok then return ... end
  local msg, level = ...
  error(msg, level or 0)
end

---Runs `fn(...)` in a worker Lua state on libuv's thread pool and returns
---its results. Yields the calling task.
---
---`fn` is a function with no upvalue other than _ENV (copied as bytecode),
---or a string naming a module: `"mod"` requires `mod`, which must return a
---function; when no module has the whole name, `"mod.fn"` calls field `fn`
---of module `mod`. Errors in the thread are raised here with the thread's
---traceback. Arguments and results are copied: nil, booleans, numbers,
---strings, tables (cycles and shared subtables kept, metatables dropped)
---and functions as above; anything else raises an error naming it.
---@param fn function|string
---@return any ...
function M.run(fn, ...)
  check.arg(1, "run", fn, "function|string")
  return finish(core.run(fn, ...))
end

---Threads in libuv's pool (UV_THREADPOOL_SIZE, default 4), which
---`tycho.thread.run` shares with `tycho.fs` and DNS lookups.
---@return integer
function M.pool_size()
  return core.pool_size()
end

---Jobs in flight and idle worker states kept for reuse.
---@return table {running = n, idle_states = n}
function M.stats()
  return core.stats()
end

---Drops the pooled worker states: later jobs get fresh ones (modules
---required again, globals gone); states still running a job are closed
---when it ends. For after a code reload.
function M.reset()
  core.reset()
end

---Starts (or restarts, or with `ms = 0` stops) the loop watchdog: when a
---callback or task keeps the event loop busy for more than `ms`
---milliseconds, stderr gets the task's name and the Lua traceback of where
---it is stuck, once per episode. `tycho run` starts it with `--block-warn`
---(default 200 ms).
---@param opts table {ms = integer}
---@return boolean|nil ok, string? err, string? code
function M.watchdog(opts)
  check.arg(1, "watchdog", opts, "table")
  local ms = opts.ms
  if math.type(ms) ~= "integer" or ms < 0 then
    error(("bad argument #1 to 'watchdog' (field 'ms' must be a non-negative integer, got %s)")
      :format(ms == nil and "nil" or tostring(ms)), 2)
  end
  return watchdog.start(ms)
end

---The watchdog's threshold (0 when off), how many episodes it reported and
---the text of the last one.
---@return table {ms = integer, reports = integer, last = string?}
function M.watchdog_status()
  return watchdog.status()
end

return M
