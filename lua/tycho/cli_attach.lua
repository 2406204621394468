--- `tycho attach PATH`: connects this terminal to the REPL server of a
--- running process (`tycho run APP --repl PATH`, or a script that called
--- `require("tycho.repl.server").listen(PATH)`). Lines are edited here and
--- evaluated there; Ctrl-C cancels the running input over there; Ctrl-D,
--- .exit or Ctrl-C twice at an empty prompt detach and leave the process
--- running. With stdin piped, lines are sent one by one without prompts,
--- and the exit code is 1 if any of them failed.
local core = require "tycho.core"
local uv = require "luv"
local cli = require "tycho.cli"
local signals = require "tycho.signals"
local input = require "tycho.repl.input"
local wire = require "tycho.repl.wire"
local session = require "tycho.repl.session"

local M = {}

local USAGE = [[
usage: tycho attach PATH
  Opens a REPL inside the process serving the Unix socket PATH.
  Ctrl-D or .exit detaches; the process keeps running.
]]

local function connect(path)
  local pipe = uv.new_pipe(false)
  local co, tok = core.token()
  pipe:connect(path, function(err) core.wake(co, tok, err) end)
  local err = core.park(function() if not pipe:is_closing() then pipe:close() end end)
  if err then
    pipe:close()
    return nil, err
  end
  return pipe
end

-- The connection: messages from the server are handled as they arrive;
-- a prompt (or the end of the connection) wakes the main loop.
local Link = {}
Link.__index = Link

function Link:wake()
  local w = self.waiter
  if w then
    self.waiter = nil
    core.wake(w[1], w[2])
  end
end

function Link:output(stream, text)
  local hidden = self.reader.line and self.reader.line.hide()
  stream:write(text)
  stream:flush()
  if hidden then self.reader.line.show() end
end

function Link:on_message(msg)
  if msg.t == "out" then
    self:output(io.stdout, tostring(msg.s))
  elseif msg.t == "err" then
    self.errors = self.errors + 1
    self:output(io.stderr, tostring(msg.s))
  elseif msg.t == "hello" then
    if self.reader.interactive then
      self:output(io.stdout, ("attached to process %s (Tycho %s); Ctrl-D or .exit detaches\n")
        :format(tostring(msg.pid), tostring(msg.version)))
    end
  elseif msg.t == "prompt" then
    self.prompt = tostring(msg.s)
    self:wake()
  end
end

function Link:start()
  local split = wire.splitter()
  self.pipe:read_start(function(err, data)
    if err or not data then
      self.gone = true
      if not self.pipe:is_closing() then self.pipe:close() end
      return self:wake()
    end
    local msgs, bad = split(data)
    for _, msg in ipairs(msgs) do self:on_message(msg) end
    if bad then
      self.gone = true
      self.pipe:close()
      self:wake()
    end
  end)
end

-- Waits for the server's next prompt; nil when the connection ended.
function Link:next_prompt()
  while not self.prompt and not self.gone do
    local co, tok = core.token()
    self.waiter = { co, tok }
    core.park(function() self.waiter = nil end)
  end
  local p = self.prompt
  self.prompt = nil
  if self.gone then return nil end
  return p
end

function Link:send(msg)
  if not self.gone and not self.pipe:is_closing() then self.pipe:write(wire.encode(msg)) end
end

function Link:close()
  self.gone = true
  if not self.pipe:is_closing() then self.pipe:close() end
end

-- Reads lines and sends them, one per prompt, until either side ends.
local function converse(link, reader)
  local interrupts = 0
  while true do
    local prompt = link:next_prompt()
    if not prompt then return end
    local text, partial = reader:read(prompt)
    if text == nil then
      if reader.interactive then io.stdout:write("\n") end
      return
    end
    if text == false then
      io.stdout:write("\n")
      if partial == "" and prompt == session.PROMPT then
        interrupts = interrupts + 1
        if interrupts >= 2 then return end
        io.stdout:write("(To detach, press Ctrl-C again or Ctrl-D or type .exit)\n")
      else
        interrupts = 0
      end
      link:send({ t = "int" })
    else
      interrupts = 0
      reader:remember(text)
      link:send({ t = "line", s = text })
    end
  end
end

function M.main(args)
  if args[1] == "-h" or args[1] == "--help" then
    io.stdout:write(USAGE)
    return 0
  end
  local path = args[1]
  if not path or args[2] then return cli.usage_error("usage: tycho attach PATH") end
  local pipe, err = connect(path)
  if not pipe then
    cli.say_error("cannot attach to %s: %s", path, tostring(err))
    return 1
  end
  local reader = input.open({ history = input.history_path() })
  local link = setmetatable({ pipe = pipe, reader = reader, errors = 0 }, Link)
  local untake = signals.take(function(sig)
    if sig ~= "SIGINT" then return false end
    if reader.line and reader.line.interrupt() then return true end
    link:send({ t = "int" })
    return true
  end)
  link:start()
  converse(link, reader)
  untake()
  link:close()
  reader:close()
  if reader.interactive then
    io.stderr:write("detached\n")
    return 0
  end
  return link.errors > 0 and 1 or 0 -- scripted: say whether every line worked
end

return M
