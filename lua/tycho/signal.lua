--- tycho.signal: react to POSIX signals from tasks. SIGINT, SIGTERM and
--- SIGHUP belong to the host (lua/tycho/signals.lua decides what they mean:
--- by default INT and TERM end the process); handlers for those three are
--- routed through `signals.take`, so a handler here takes the signal over.
--- Other signals use libuv signal handles.
local core = require "tycho.core"
local uv = require "luv"
local check = require "tycho.check"
local signals = require "tycho.signals"

local token, park, wake = core.token, core.park, core.wake

local M = {}

local HOST_OWNED = { SIGINT = true, SIGTERM = true, SIGHUP = true }

-- Numbers Linux uses, for names given as numbers and exit statuses.
local NUMBERS = {
  SIGHUP = 1, SIGINT = 2, SIGQUIT = 3, SIGILL = 4, SIGTRAP = 5, SIGABRT = 6,
  SIGBUS = 7, SIGFPE = 8, SIGKILL = 9, SIGUSR1 = 10, SIGSEGV = 11, SIGUSR2 = 12,
  SIGPIPE = 13, SIGALRM = 14, SIGTERM = 15, SIGCHLD = 17, SIGCONT = 18,
  SIGSTOP = 19, SIGTSTP = 20, SIGTTIN = 21, SIGTTOU = 22, SIGWINCH = 28,
}
local NAMES = {}
for name, n in pairs(NUMBERS) do NAMES[n] = name end

---The canonical name ("SIGUSR1") for "SIGUSR1", "sigusr1", "USR1" or 10;
---nil for an unknown signal.
---@param sig string|integer
function M.name(sig)
  if type(sig) == "number" then return NAMES[sig] end
  if type(sig) ~= "string" then return nil end
  local name = sig:upper()
  if name:sub(1, 3) ~= "SIG" then name = "SIG" .. name end
  return NUMBERS[name] and name or nil
end

---The signal's number on this system, or nil.
function M.number(sig)
  local name = M.name(sig)
  return name and NUMBERS[name]
end

local function check_signal(n, fname, sig)
  check.arg(n, fname, sig, "string|number", 3)
  local name = M.name(sig)
  if not name then
    error(("bad argument #%d to '%s' (unknown signal '%s')"):format(n, fname, tostring(sig)), 3)
  end
  if name == "SIGKILL" or name == "SIGSTOP" then
    error(("bad argument #%d to '%s' (%s cannot be caught)"):format(n, fname, name), 3)
  end
  return name
end

local Handler = {}
Handler.__index = Handler

---Stops the handler; idempotent.
function Handler:stop()
  local stop = self._stop
  if stop then
    self._stop = nil
    stop()
  end
end

function Handler:__tostring()
  return ("signal handler<%s%s>"):format(self.signal, self._stop and "" or " stopped")
end

local live_handles = 0

-- A libuv signal handle calling fn(name) on each delivery, and the
-- function that closes it.
local function uv_signal(name, fn)
  local h = uv.new_signal()
  h:start(name:lower(), function() fn(name) end)
  live_handles = live_handles + 1
  return h, function()
    if not h:is_closing() then
      h:close()
      live_handles = live_handles - 1
    end
  end
end

---How many signal handles this module has open (for leak checks).
function M.open_handles()
  return live_handles
end

---Runs `fn(name)` in a new task each time the signal arrives, until
---`:stop()`. A handler does not keep the process alive on its own.
---@param sig string|integer "SIGUSR1", "usr1", 10, ...
---@param fn fun(name: string)
---@return table handler with :stop()
function M.on(sig, fn)
  local name = check_signal(1, "on", sig)
  check.arg(2, "on", fn, "function")
  local handler = setmetatable({ signal = name }, Handler)
  -- A delivery already queued when :stop() runs is dropped: after stop,
  -- fn is never called again.
  local function run() if handler._stop then return fn(name) end end
  if HOST_OWNED[name] then
    handler._stop = signals.take(function(got)
      if got ~= name then return false end
      core.spawn(run)
      return true
    end)
  else
    local h, close = uv_signal(name, function() core.spawn(run) end)
    h:unref()
    handler._stop = close
  end
  return handler
end

---Awaits the next delivery of the signal; returns its name, or nil,
---message, "ETIMEDOUT" after `timeout` seconds. While waiting, the process
---stays alive. Yields.
---@param sig string|integer
---@param timeout? number
function M.wait(sig, timeout)
  local name = check_signal(1, "wait", sig)
  check.opt(2, "wait", timeout, "number")
  local co, tok = token()
  -- This handle keeps the loop alive; for the host's own signals the
  -- taker below is what claims the delivery, so the handle only listens.
  local _, close = uv_signal(name, function() wake(co, tok, name) end)
  local untake
  if HOST_OWNED[name] then
    untake = signals.take(function(got) return got == name end)
  end
  local timer
  if timeout then
    timer = uv.new_timer()
    uv.update_time()
    timer:start(math.max(0, math.ceil(timeout * 1000)), 0, function() wake(co, tok, false) end)
  end
  local function cleanup()
    close()
    if timer then timer:close() end
    if untake then untake() end
  end
  local got = park(cleanup)
  cleanup()
  if not got then return nil, "ETIMEDOUT: no " .. name .. " within " .. timeout .. " s", "ETIMEDOUT" end
  return got
end

---Sends a signal to a process (default: this one). Returns true, or nil,
---message, code.
---@param pid integer
---@param sig string|integer
function M.kill(pid, sig)
  check.arg(1, "kill", pid, "number")
  check.arg(2, "kill", sig, "string|number")
  local n = M.number(sig)
  if not n then error("bad argument #2 to 'kill' (unknown signal '" .. tostring(sig) .. "')", 2) end
  local ok, err, code = uv.kill(pid, n)
  if not ok then return nil, err, code end
  return true
end

return M
