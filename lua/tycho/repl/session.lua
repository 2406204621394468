--- tycho.repl.session: the evaluator behind every REPL (the terminal one,
--- piped stdin, and each client of the REPL server). It collects lines
--- until they form a complete chunk, tries `return <input>` first (as
--- `lua` 5.4 does), runs the chunk as a task so it may await, prints the
--- results with the pretty printer and keeps the last one in `_`.
--- Lines starting with a dot and a letter are commands: .help, .load, .exit.
local core = require "tycho.core"
local printer = require "tycho.repl.printer"
local check = require "tycho.check"

local M = {}

local Session = {}
Session.__index = Session

M.PROMPT = "> "
M.CONTINUE = ">> "

local HELP = [[
Commands:
  .help         show this help
  .load FILE    run FILE in the REPL's environment
  .reload       reload the app of `tycho run` (as SIGHUP does)
  .exit         leave the REPL (Ctrl-D does the same)
Each input runs as a task: `tycho.sleep(1)` or an HTTP request may await
while the event loop keeps running. Ctrl-C cancels a running input; at an
empty prompt, press it twice to leave. `_` holds the last result.
]]

---Creates a session.
---@param opts {env?: table, write?: fun(s: string), write_err?: fun(s: string), color?: boolean, name?: string, guard?: function, unguard?: function}
---  `write` receives results, `write_err` errors; both default to stdio.
---  `guard()` runs first thing in each input's task and `unguard()` after
---  it (returning true when it interrupted the input).
---@return table session
function M.new(opts)
  opts = opts or {}
  check.opt(1, "new", opts.env, "table")
  local s = setmetatable({
    env = opts.env or _G,
    write = opts.write or function(text) io.stdout:write(text) io.stdout:flush() end,
    write_err = opts.write_err or function(text) io.stderr:write(text) io.stderr:flush() end,
    color = opts.color or false,
    guard = opts.guard,
    unguard = opts.unguard,
    name = opts.name or "=repl",
    buffer = nil,   -- lines of an incomplete chunk
    running = nil,  -- handle of the task running an input
    failures = 0,   -- inputs that ended in an error
  }, Session)
  return s
end

---The prompt to show for the next line: continuation while a chunk is open.
function Session:prompt()
  return self.buffer and M.CONTINUE or M.PROMPT
end

local function ends_incomplete(err)
  return err:sub(-5) == "<eof>"
end

---Compiles source the way `lua` does: as an expression first, then as a
---statement. Returns fn, or nil, message, incomplete.
---@param src string
---@param env table
---@param name string chunk name
function M.compile(src, env, name)
  local fn = load("return " .. src, name, "t", env)
  if fn then return fn end
  local err
  fn, err = load(src, name, "t", env)
  if fn then return fn end
  return nil, err, ends_incomplete(err)
end

function Session:error(text)
  self.failures = self.failures + 1
  if self.color then text = "\27[31m" .. text .. "\27[0m" end
  self.write_err(text .. "\n")
end

local function error_text(err, opts)
  if type(err) == "string" then return err end
  local mt = getmetatable(err)
  if mt and mt.__tostring then return tostring(err) end
  return "error: " .. printer.format(err, opts)
end

-- The traceback of an error inside a guarded input, without the frames
-- of the REPL itself (from xpcall down).
local function traceback(err)
  if type(err) ~= "string" then return err end
  return (debug.traceback(err, 2):gsub("\n%s*%[C%]: in function 'xpcall'.*$", ""))
end

-- With a guard (the terminal REPL's Ctrl-C for inputs that never yield),
-- the task arms it first and runs the input under xpcall: an error raised
-- from a debug hook must end in a protected call, or the coroutine, which
-- goes back to the task pool, would never run hooks again.
local function guarded(guard, fn)
  return function(...)
    guard()
    return xpcall(fn, traceback, ...)
  end
end

---Runs fn as a task, waits for it and prints its results or its error.
function Session:run(fn, ...)
  local h = core.spawn(self.guard and guarded(self.guard, fn) or fn, ...)
  self.running, self.cancelled = h, false
  local r = table.pack(pcall(h.join, h))
  self.running = nil
  local hit = self.unguard and self.unguard()
  local first = 2 -- index of the first result in r
  if r[1] and self.guard then
    if r[2] then first = 3 else r = { false, r[3], n = 2 } end
  end
  if not r[1] then
    if self.cancelled or hit then return self:error("cancelled") end
    return self:error(error_text(r[2], { color = false }))
  end
  if r.n < first then return end
  self.env._ = r[first]
  local values = table.pack(table.unpack(r, first, r.n))
  self.write(printer.format_all(values, { color = self.color }) .. "\n")
end

---Cancels the running input, or drops an unfinished chunk.
---@return string what "cancelled", "cleared" or "idle"
function Session:interrupt()
  if self.running then
    self.cancelled = true
    self.running:cancel()
    return "cancelled"
  end
  if self.buffer then
    self.buffer = nil
    return "cleared"
  end
  return "idle"
end

local function read_file(path)
  local f, err = io.open(path, "r")
  if not f then return nil, err end
  local text = f:read("a")
  f:close()
  return text
end

function Session:load_file(path)
  if path == "" then return self:error(".load needs a file name") end
  local text, err = read_file(path)
  if not text then return self:error(err) end
  local fn, cerr = load((text:gsub("^#![^\n]*", "")), "@" .. path, "t", self.env)
  if not fn then return self:error(cerr) end
  return self:run(fn)
end

local COMMANDS = {
  help = function(self)
    self.write(HELP)
    return "done"
  end,
  exit = function() return "exit" end,
  load = function(self, arg)
    self:load_file(arg)
    return "done"
  end,
  reload = function(self)
    self:run(function()
      local reload = package.loaded["tycho.reload"]
      if type(reload) ~= "table" or not reload.current then error("no app to reload", 0) end
      return assert(reload.reload())
    end)
    return "done"
  end,
}

function Session:command(name, arg)
  local cmd = COMMANDS[name]
  if not cmd then
    self:error(("unknown command '.%s' (try .help)"):format(name))
    return "done"
  end
  return cmd(self, arg)
end

---Feeds one line. Yields while the input runs. Returns "more" when the
---chunk is incomplete, "exit" after .exit, else "done".
---@param line string
---@return string
function Session:feed(line)
  check.arg(1, "feed", line, "string")
  if not self.buffer then
    local cmd, arg = line:match("^%s*%.(%a+)%s*(.-)%s*$")
    if cmd then return self:command(cmd, arg) end
    if not line:find("%S") then return "done" end
    self.buffer = line
  else
    self.buffer = self.buffer .. "\n" .. line
  end
  local fn, err, incomplete = M.compile(self.buffer, self.env, self.name)
  if incomplete then return "more" end
  self.buffer = nil
  if not fn then
    self:error(err)
  else
    self:run(fn)
  end
  return "done"
end

---Ends the session: a running input is cancelled, an open chunk dropped.
---@return boolean true if there was an unfinished chunk
function Session:finish()
  local open = self.buffer ~= nil
  self:interrupt()
  self.buffer = nil
  return open
end

return M
