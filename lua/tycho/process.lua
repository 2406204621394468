--- tycho.process: child processes with awaiting streams, and this
--- process's pid, environment, working directory and exit.
local core = require "tycho.core"
local uv = require "luv"
local check = require "tycho.check"
local stream = require "tycho.stream"
local signal = require "tycho.signal"

local token, wake = core.token, core.wake
local fail, wait = stream.fail, stream.wait

local M = {}

M.pid = math.tointeger(uv.os_getpid())

local STDIO = { "stdin", "stdout", "stderr" }
local MODES = { pipe = true, inherit = true, ignore = true }

local Process = {}
Process.__index = Process

local function on_exit(s, code, signum)
  s.exited = true
  s.signal = signum ~= 0 and (signal.name(signum) or signum) or nil
  s.code = signum ~= 0 and 128 + signum or code
  if not s.h:is_closing() then s.h:close() end
  local waiters = s.waiters
  s.waiters = {}
  for _, w in ipairs(waiters) do wake(w[1], w[2]) end
end

---Awaits the child's exit. Returns the exit code and, when a signal ended
---it, the signal's name (the code is then 128 + its number, as in a
---shell). With `timeout` (seconds) returns nil, message, "ETIMEDOUT" if the
---child is still running then. Yields unless it has already exited.
---@param timeout? number
---@return integer? code, string? signal
function Process:wait(timeout)
  check.opt(1, "wait", timeout, "number")
  local s = self._s
  if not s.exited then
    local co, tok = token()
    local w = { co, tok }
    s.waiters[#s.waiters + 1] = w
    local function forget()
      for i, x in ipairs(s.waiters) do
        if x == w then table.remove(s.waiters, i) break end
      end
    end
    local why = wait(co, tok, timeout, forget)
    if why == "timeout" then
      forget()
      return nil, ("ETIMEDOUT: process %d still running after %g s"):format(self.pid, timeout), "ETIMEDOUT"
    end
  end
  return s.code, s.signal
end

---Sends a signal (default "SIGTERM") to the child. Returns true, or nil,
---message, code (ESRCH once it has exited).
---@param sig? string|integer
function Process:kill(sig)
  sig = sig or "SIGTERM"
  check.arg(1, "kill", sig, "string|number")
  local n = signal.number(sig)
  if not n then error("bad argument #1 to 'kill' (unknown signal '" .. tostring(sig) .. "')", 2) end
  local s = self._s
  if s.exited or s.h:is_closing() then
    return nil, "ESRCH: process has exited", "ESRCH"
  end
  local ok, err = s.h:kill(n)
  if not ok then return fail(err) end
  return true
end

---True until the child has exited.
function Process:is_running()
  return not self._s.exited
end

---Closes the child's pipes (the child itself keeps running).
function Process:close()
  for _, name in ipairs(STDIO) do
    if self[name] then self[name]:close() end
  end
end

Process.__close = Process.close

function Process:__tostring()
  local s = self._s
  return ("process<%d %s>"):format(self.pid, s.exited and ("exited " .. tostring(s.code)) or "running")
end

local function env_list(env)
  local list = {}
  for k, v in pairs(env) do
    if type(k) ~= "string" or k:find("=", 1, true) then
      error("bad argument #3 to 'spawn' (env keys must be strings without '=')", 4)
    end
    list[#list + 1] = k .. "=" .. tostring(v)
  end
  table.sort(list)
  return list
end

---Starts `cmd` (searched in PATH) with `args` (a list of strings, without
---the command itself). `opts`: `env` (a table; replaces the environment),
---`cwd`, and `stdin`/`stdout`/`stderr`, each "pipe" (default), "inherit" or
---"ignore". Returns a process with `.pid`, `.stdin`, `.stdout`, `.stderr`
---(streams for "pipe"), `:wait()`, `:kill()`; or nil, message, code.
---@param cmd string
---@param args? string[]
---@param opts? table
-- The argument checks spawn and exec share; returns opts or {}.
local function check_command(fname, cmd, args, opts)
  check.arg(1, fname, cmd, "string", 3)
  check.opt(2, fname, args, "table", 3)
  check.opt(3, fname, opts, "table", 3)
  opts = opts or {}
  check.opt(3, fname, opts.env, "table", 3)
  check.opt(3, fname, opts.cwd, "string", 3)
  return opts
end

function M.spawn(cmd, args, opts)
  opts = check_command("spawn", cmd, args, opts)
  local argv = {}
  for i, a in ipairs(args or {}) do
    if type(a) ~= "string" and type(a) ~= "number" then
      error(("bad argument #2 to 'spawn' (argument %d is a %s, string expected)"):format(i, type(a)), 2)
    end
    argv[i] = tostring(a)
  end
  local stdio, pipes = {}, {}
  for i, name in ipairs(STDIO) do
    local mode = opts[name] or "pipe"
    if not MODES[mode] then
      error(("bad argument #3 to 'spawn' (%s must be 'pipe', 'inherit' or 'ignore')"):format(name), 2)
    end
    if mode == "pipe" then
      pipes[name] = uv.new_pipe(false)
      stdio[i] = pipes[name]
    elseif mode == "inherit" then
      stdio[i] = i - 1
    else
      stdio[i] = nil
    end
  end
  local s = { exited = false, waiters = {} }
  local h, pid_or_err, code = uv.spawn(cmd, {
    args = argv, stdio = { stdio[1], stdio[2], stdio[3] },
    env = opts.env and env_list(opts.env) or nil,
    cwd = opts.cwd, detached = opts.detached or nil,
  }, function(c, sig) on_exit(s, c, sig) end)
  if not h then
    for _, p in pairs(pipes) do p:close() end
    return nil, ("%s (spawning %s)"):format(pid_or_err, cmd), code
  end
  s.h = h
  local proc = setmetatable({ pid = math.tointeger(pid_or_err), _s = s }, Process)
  for name, p in pairs(pipes) do proc[name] = stream.wrap(p, "pipe") end
  return proc
end

---Runs a command to completion and returns its stdout, stderr and exit
---code (plus the signal name when one ended it); nil, message, code if it
---could not start. `opts.input` is written to its stdin; `opts.timeout`
---(seconds) kills it with SIGKILL when exceeded. Yields.
---@param cmd string
---@param args? string[]
---@param opts? table
function M.exec(cmd, args, opts)
  opts = check_command("exec", cmd, args, opts)
  check.opt(3, "exec", opts.input, "string")
  check.opt(3, "exec", opts.timeout, "number")
  local p, err, code = M.spawn(cmd, args, {
    env = opts.env, cwd = opts.cwd, stdout = "pipe", stderr = "pipe",
    stdin = opts.input and "pipe" or "ignore",
  })
  if not p then return nil, err, code end
  local function drain(st)
    local parts = {}
    while true do
      local chunk = st:read()
      if not chunk then break end
      parts[#parts + 1] = chunk
    end
    st:close()
    return table.concat(parts)
  end
  -- stderr and stdin run beside us, so a child that fills one pipe while
  -- we wait on another cannot deadlock.
  local errs = core.spawn(drain, p.stderr)
  if opts.input then
    core.spawn(function()
      -- exec may be over (the child exited without reading) before this
      -- runs or while it waits: then the pipe is closed under it.
      local stdin = p.stdin
      if not stdin:is_closed() and stdin:write(opts.input) and not stdin:is_closed() then
        stdin:shutdown()
      end
      stdin:close()
    end)
  end
  local killer
  if opts.timeout then
    killer = uv.new_timer()
    killer:start(math.ceil(opts.timeout * 1000), 0, function() p:kill("SIGKILL") end)
  end
  -- However this ends (return, error, cancel), the timer goes; if we did
  -- not see the child exit, it is killed rather than left behind.
  local guard <close> = setmetatable({}, { __close = function()
    if killer and not killer:is_closing() then killer:close() end
    if p:is_running() then p:kill("SIGKILL") end
    p:close()
  end })
  local out = drain(p.stdout)
  local status, sig = p:wait()
  return out, errs:join(), status, sig
end

-- ---------------------------------------------------------------------
-- This process

---Environment variables: `env.HOME` reads, `env.X = "1"` sets, `env.X =
---nil` unsets; `pairs(env)` lists them all.
M.env = setmetatable({}, {
  __index = function(_, k)
    if type(k) ~= "string" then return nil end
    return uv.os_getenv(k)
  end,
  __newindex = function(_, k, v)
    check.arg(1, "env", k, "string")
    if v == nil then
      uv.os_unsetenv(k)
    else
      uv.os_setenv(k, tostring(v))
    end
  end,
  __pairs = function()
    return next, uv.os_environ(), nil
  end,
})

---The current working directory.
function M.cwd()
  return uv.cwd()
end

---Changes the working directory. Returns true, or nil, message, code.
---@param path string
function M.chdir(path)
  check.arg(1, "chdir", path, "string")
  local ok, err, code = uv.chdir(path)
  if not ok then return nil, err, code end
  return true
end

---Ends the process cleanly with `code` (default 0), like os.exit.
---@param code? integer|boolean
function M.exit(code)
  return os.exit(code)
end

return M
