--- tycho.repl.input: where REPL lines come from. On a terminal, the line
--- editor (src/repl/line.c) with history and completion; otherwise stdin
--- read line by line through the loop (a pipe) or directly (a file), with
--- no prompts. Both return the same reader:
---   reader:read(prompt) -> line | nil (end of input) | false, partial (Ctrl-C)
local core = require "tycho.core"
local uv = require "luv"

local M = {}

M.HISTORY_MAX = 1000

---The history file: $HOME/.tycho_history, or nil without HOME.
---@return string?
function M.history_path()
  local home = os.getenv("HOME")
  if not home or home == "" then return nil end
  return home .. "/.tycho_history"
end

-- ---------------------------------------------------------------------
-- The terminal

local Tty = {}
Tty.__index = Tty
Tty.interactive = true

function Tty:read(prompt)
  return self.line.read(prompt)
end

---Records a line in the history and saves the (capped) history file.
function Tty:remember(text)
  if not text:find("%S") or text == self.last then return end
  self.last = text
  self.line.history_add(text)
  if self.history then self.line.history_save(self.history) end
end

function Tty:close()
  self.line.close()
end

local function open_tty(opts)
  local line = require "tycho.repl.line"
  local self = setmetatable({ line = line, history = opts.history }, Tty)
  if self.history then line.history_load(self.history, opts.history_max or M.HISTORY_MAX) end
  if opts.complete then
    line.set_completer(function(word)
      local ok, list = pcall(opts.complete, word)
      return ok and table.concat(list, "\n") or ""
    end)
  end
  return self
end

-- ---------------------------------------------------------------------
-- A pipe: read through the loop, one chunk at a time, only when needed

local Pipe = {}
Pipe.__index = Pipe
Pipe.interactive = false

function Pipe:next_line()
  local i = self.buf:find("\n", 1, true)
  if i then
    local text = self.buf:sub(1, i - 1)
    self.buf = self.buf:sub(i + 1)
    return (text:gsub("\r$", ""))
  end
  if self.eof and self.buf ~= "" then
    local text = self.buf
    self.buf = ""
    return text
  end
end

function Pipe:read()
  while true do
    local text = self.next_line(self)
    if text or self.eof then return text end
    local co, tok = core.token()
    local pipe = self.pipe
    pipe:read_start(function(err, data)
      pipe:read_stop()
      if err or not data then
        self.eof = true
      else
        self.buf = self.buf .. data
      end
      core.wake(co, tok)
    end)
    core.park(function() if not pipe:is_closing() then pipe:read_stop() end end)
  end
end

function Pipe:remember() end

function Pipe:close()
  if not self.pipe:is_closing() then self.pipe:close() end
end

-- ---------------------------------------------------------------------
-- A file (or anything else): plain reads never block for long

local File = {}
File.__index = File
File.interactive = false

function File:read()
  local text = io.stdin:read("L")
  if not text then return nil end
  return (text:gsub("\r?\n$", ""))
end

function File:remember() end
function File:close() end

---Opens the reader that suits stdin.
---@param opts? {history?: string, history_max?: integer, complete?: fun(word: string): string[]}
---@return table reader with :read(prompt), :remember(line), :close(), .interactive
function M.open(opts)
  opts = opts or {}
  local kind = uv.guess_handle(0)
  if kind == "tty" then return open_tty(opts) end
  if kind == "pipe" then
    local pipe = uv.new_pipe(false)
    local ok, err = pipe:open(0)
    if ok then return setmetatable({ pipe = pipe, buf = "", eof = false }, Pipe) end
    pipe:close()
    io.stderr:write("tycho: stdin: ", tostring(err), "\n")
  end
  return setmetatable({}, File)
end

---True when stdout is a terminal and colours are welcome (NO_COLOR unset,
---TERM not "dumb").
---@return boolean
function M.want_color()
  local no = os.getenv("NO_COLOR")
  if no and no ~= "" then return false end
  if os.getenv("TERM") == "dumb" then return false end
  return uv.guess_handle(1) == "tty"
end

return M
