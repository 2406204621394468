--- tycho: the host's Lua library. Time, tasks and lazily loaded submodules
--- (`tycho.fs`, `tycho.json`, `tycho.http`, ...), all awaiting through the
--- scheduler in src/core/task.c.
local core = require "tycho.core"
local uv = require "luv"
local check = require "tycho.check"

local token, park, wake = core.token, core.park, core.wake

local M = {}

M.uv = uv
M.version = core.versions().tycho
M.versions = core.versions

---Starts `fn(...)` as a new task on the next loop turn.
---@param fn function
---@return table handle with :join(), :cancel(), :status()
function M.spawn(fn, ...)
  check.arg(1, "spawn", fn, "function")
  return core.spawn(fn, ...)
end

---True when the caller runs inside a task (so it may await).
---@return boolean
function M.in_task()
  return core.in_task()
end

---Suspends the current task for `seconds` (fractions allowed). Yields.
---@param seconds number
function M.sleep(seconds)
  check.arg(1, "sleep", seconds, "number")
  if seconds < 0 or seconds ~= seconds then
    error("bad argument #1 to 'sleep' (non-negative number expected)", 2)
  end
  local co, tok = token()
  local timer = uv.new_timer()
  -- libuv's timers count whole milliseconds of a clock that it truncates,
  -- so they may fire up to 1 ms early; check against hrtime and top up.
  local deadline = core.hrtime() + math.ceil(seconds * 1e9)
  local function on_timer()
    local left = deadline - core.hrtime()
    if left > 0 then return timer:start(math.ceil(left / 1e6), 0, on_timer) end
    timer:close()
    wake(co, tok)
  end
  uv.update_time() -- the cached loop time may lag: count from now
  timer:start(math.ceil(seconds * 1000), 0, on_timer)
  park(function()
    if not timer:is_closing() then timer:close() end
  end)
end

---Loop time in milliseconds (cached at the start of the loop turn).
---@return integer
function M.now()
  return uv.now()
end

---A monotonic clock in nanoseconds (an integer).
---@return integer
function M.hrtime()
  return core.hrtime()
end

local Timer = {}
Timer.__index = Timer

---Stops the timer; its callback will not run again.
function Timer:stop()
  if not self.handle:is_closing() then self.handle:close() end
  -- Ticks whose task has not started yet (several can fire in one loop
  -- turn) must not run either.
  for _, task in ipairs(self.queued) do
    if task:status() == "ready" then task:cancel() end
  end
  self.queued = {}
end

---True while the timer is still due to fire.
---@return boolean
function Timer:is_active()
  return not self.handle:is_closing() and self.handle:is_active()
end

---Lets the process exit even while this timer is pending.
function Timer:unref()
  self.handle:unref()
  return self
end

local function new_timer(name, ms, fn, repeating)
  check.arg(1, name, ms, "number")
  check.arg(2, name, fn, "function")
  if ms < 0 or ms ~= ms then
    error(("bad argument #1 to '%s' (non-negative number expected)"):format(name), 3)
  end
  local handle = uv.new_timer()
  local timer = setmetatable({ handle = handle, queued = {} }, Timer)
  local interval = repeating and math.max(1, math.ceil(ms)) or 0
  uv.update_time() -- as in sleep: count from now, not from the turn's start
  handle:start(math.ceil(ms), interval, function()
    if not repeating then handle:close() end
    local queued = {}
    for _, task in ipairs(timer.queued) do
      if task:status() == "ready" then queued[#queued + 1] = task end
    end
    queued[#queued + 1] = core.spawn(fn, timer)
    timer.queued = queued
  end)
  return timer
end

---Runs `fn` as a task once, after `ms` milliseconds.
---@param ms number
---@param fn fun(timer: table)
---@return table timer with :stop()
function M.set_timeout(ms, fn)
  return new_timer("set_timeout", ms, fn, false)
end

---Runs `fn` as a task every `ms` milliseconds until stopped.
---@param ms number
---@param fn fun(timer: table)
---@return table timer with :stop()
function M.set_interval(ms, fn)
  return new_timer("set_interval", ms, fn, true)
end

-- Submodules load on first use, so `tycho.fs` costs nothing until touched.
setmetatable(M, {
  __index = function(t, key)
    if type(key) ~= "string" or not key:match("^[%a_][%w_]*$") then return nil end
    local name = "tycho." .. key
    local ok, mod = pcall(require, name)
    if ok then
      rawset(t, key, mod)
      return mod
    end
    if tostring(mod):find("module '" .. name .. "' not found", 1, true) then
      return nil
    end
    error(mod, 2)
  end,
})

return M
