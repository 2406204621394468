--- `tycho repl` (and bare `tycho` on a terminal): the interactive prompt
--- with the event loop running behind it. On a terminal: line editing,
--- history in ~/.tycho_history, tab completion, colours, Ctrl-C to cancel
--- a running input. With stdin piped: the same evaluation line by line,
--- without prompts or colours; the exit code is 1 if any input failed.
local core = require "tycho.core"
local session = require "tycho.repl.session"
local input = require "tycho.repl.input"
local complete = require "tycho.repl.complete"
local signals = require "tycho.signals"

local M = {}

local USAGE = [[
usage: tycho repl
  Interactive Lua prompt with the event loop running behind it.
  Type .help at the prompt for commands. With stdin piped, lines are
  evaluated one by one without prompts.
]]

local function banner()
  local v = core.versions()
  return ("Tycho %s (%s) - type .help for help, Ctrl-D to exit\n"):format(v.tycho, v.lua)
end

-- While the prompt shows, print() takes it off the screen first, so that
-- a timer or a request handler printing does not garble the input line.
local function wrap_print(line)
  local print0 = print
  _G.print = function(...)
    local hidden = line.hide()
    print0(...)
    if hidden then line.show() end
  end
  return function()
    if _G.print ~= print0 then _G.print = print0 end
  end
end

local function interactive(reader, s)
  local line = reader.line
  local restore_print = wrap_print(line)
  -- Ctrl-C also reaches inputs that never yield (see line.guard).
  s.guard, s.unguard = line.guard, line.unguard
  local untake = signals.take(function(sig)
    if sig ~= "SIGINT" then return false end
    local took = line.took_sigint() -- it already stopped an input that did not yield
    if s.running then
      s:interrupt()
    elseif not took then
      line.interrupt()
    end
    return true
  end)
  io.stdout:write(banner())
  local interrupts = 0
  while true do
    local text, partial = reader:read(s:prompt())
    if text == nil then
      io.stdout:write("\n")
      break
    end
    if text == false then
      io.stdout:write("\n")
      if partial == "" and not s.buffer then
        interrupts = interrupts + 1
        if interrupts >= 2 then break end
        io.stdout:write("(To exit, press Ctrl-C again or Ctrl-D or type .exit)\n")
      else
        interrupts = 0
        s:interrupt()
      end
    else
      interrupts = 0
      reader:remember(text)
      if s:feed(text) == "exit" then break end
    end
  end
  untake()
  restore_print()
  reader:close()
  -- Leaving the REPL ends the process, even with servers still open.
  core.exit(0)
  return 0
end

local function piped(reader, s)
  while true do
    local text = reader:read()
    if text == nil then break end
    if s:feed(text) == "exit" then break end
  end
  if s.buffer then s:error("unexpected end of input in an unfinished chunk") end
  reader:close()
  return s.failures > 0 and 1 or 0
end

function M.main(args)
  if args[1] == "-h" or args[1] == "--help" then
    io.stdout:write(USAGE)
    return 0
  elseif args[1] then
    return require("tycho.cli").usage_error("repl: unexpected argument '%s'", args[1])
  end
  local s
  local reader = input.open({
    history = input.history_path(),
    complete = function(word) return complete.candidates(word, s.env) end,
  })
  s = session.new({ env = _G, color = reader.interactive and input.want_color() })
  if reader.interactive then return interactive(reader, s) end
  return piped(reader, s)
end

return M
