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

-- The connection. Messages from the server go through one queue, in the
-- order they arrived, and are handled from it; a prompt (or the end of
-- the connection) wakes the main loop.
local Link = {}
Link.__index = Link

M.COMPLETE_TIMEOUT = 0.5 -- seconds Tab waits for the remote names
M.MAX_COMPLETE_TIMEOUT = 10

-- TYCHO_COMPLETE_TIMEOUT=SECONDS overrides the wait (a slow link, a
-- loaded test machine); a value that is not a number in range is refused
-- with a warning.
local function complete_timeout()
  local text = os.getenv("TYCHO_COMPLETE_TIMEOUT")
  if not text or text == "" then return M.COMPLETE_TIMEOUT end
  local t = tonumber(text)
  if t and t >= 0 and t <= M.MAX_COMPLETE_TIMEOUT then return t end
  cli.say_error("ignoring TYCHO_COMPLETE_TIMEOUT=%s (seconds from 0 to %d expected)", text,
    M.MAX_COMPLETE_TIMEOUT)
  return M.COMPLETE_TIMEOUT
end

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
  -- Anything else (an answer to a Tab that gave up waiting) is dropped.
end

-- The connection ended or the server sent garbage.
function Link:hang_up()
  self.gone = true
  if not self.pipe:is_closing() then self.pipe:close() end
  self:wake()
end

-- Handles the queued messages in order; false marks the end.
function Link:drain()
  local q = self.queue
  while q.first <= q.last do
    local msg = q[q.first]
    q[q.first] = nil
    q.first = q.first + 1
    if msg then
      self:on_message(msg)
    else
      self:hang_up()
    end
  end
end

function Link:push(msg)
  local q = self.queue
  q.last = q.last + 1
  q[q.last] = msg
end

function Link:start()
  self.split = wire.splitter()
  self.queue = { first = 1, last = 0 }
  self.pipe:read_start(function(err, data)
    if err or not data then
      self:push(false)
    else
      local msgs, bad = self.split(data)
      for _, msg in ipairs(msgs) do self:push(msg) end
      if bad then self:push(false) end
    end
    self:drain()
  end)
end

-- Tab: the names the remote session offers for word ({} when it does not
-- answer in time). libedit asks from inside its key handler and wants the
-- list back before it returns, so this cannot yield to the loop for the
-- answer: it blocks on the socket instead (wire.ask), for at most
-- COMPLETE_TIMEOUT, with the terminal idle meanwhile. Whatever else the
-- server sends in that time joins the queue behind what came before, and
-- is handled on the next loop turn, once libedit is done with the screen;
-- a late answer is recognised by its id and dropped.
function Link:complete(word)
  if self.gone or self.pipe:is_closing() then return {} end
  self.asked = self.asked + 1
  local id = self.asked
  local tmp = {}
  local answer = wire.ask(self.pipe, self.split, { t = "complete", id = id, s = word },
    function(m) return m.t == "completion" and m.id == id end, self.complete_timeout, tmp)
  for _, msg in ipairs(tmp) do self:push(msg) end
  if #tmp > 0 then self.timer:start(0, 0, function() self:drain() end) end
  local list = {}
  if answer and type(answer.list) == "table" then
    for _, name in ipairs(answer.list) do
      if type(name) == "string" then list[#list + 1] = name end
    end
  end
  return list
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
  if not self.timer:is_closing() then self.timer:close() end
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
  local link
  local reader = input.open({
    history = input.history_path(),
    complete = function(word) return link:complete(word) end,
  })
  link = setmetatable({
    pipe = pipe, reader = reader, errors = 0, asked = 0, timer = uv.new_timer(),
    complete_timeout = reader.interactive and complete_timeout(),
  }, Link)
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
