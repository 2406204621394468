--- tycho.repl.server: a REPL into a live process over a Unix socket, for
--- `tycho attach PATH` (and `tycho run APP --repl PATH`). The socket is
--- created with mode 0600, so only its owner can connect; there is no TCP
--- listener. Each client gets its own session: an environment whose reads
--- fall through to the app's globals (assign `_G.x` to change one),
--- its own `_`, and a `print` that writes to the client. Inputs run as
--- tasks inside the process, next to the traffic it serves. Detaching
--- (Ctrl-D, .exit, or the client going away) leaves the process running.
local core = require "tycho.core"
local uv = require "luv"
local check = require "tycho.check"
local session = require "tycho.repl.session"
local complete = require "tycho.repl.complete"
local json = require "tycho.json"
local wire = require "tycho.repl.wire"

local M = {}

M.BACKLOG = 16
M.MAX_CLIENTS = 64
M.MAX_COMPLETIONS = 2000 -- candidates in one answer to Tab

local Server = {}
Server.__index = Server

-- ---------------------------------------------------------------------
-- One client

local function send(conn, msg)
  if conn.closed then return end
  conn.pipe:write(wire.encode(msg))
end

local function notify(conn)
  local w = conn.waiter
  if w then
    conn.waiter = nil
    core.wake(w[1], w[2])
  end
end

-- Next line from the client, or nil once it has gone. Yields.
local function next_line(conn)
  while #conn.lines == 0 and not conn.eof do
    local co, tok = core.token()
    conn.waiter = { co, tok }
    core.park(function() conn.waiter = nil end)
  end
  return table.remove(conn.lines, 1)
end

local function close_conn(server, conn)
  if conn.closed then return end
  conn.closed = true
  conn.eof = true
  server.conns[conn] = nil
  server.count = server.count - 1
  conn.session:finish()
  if not conn.pipe:is_closing() then conn.pipe:close() end
  notify(conn)
end

-- The globals a session reads through: those of the app `tycho run`
-- loaded (a tycho.reload generation, which has its own), looked up anew
-- each time so that a reload is seen, else the process's.
local function app_globals()
  local reload = package.loaded["tycho.reload"]
  local app = type(reload) == "table" and reload.current
  local gen = app and app.gen
  return gen and gen.env or _G
end

-- What Tab sees in a session: its own globals over the app's, as plain
-- tables, so that the completer's raw lookups find both without calling
-- the session's __index function.
local function completion_env(env)
  local view = {}
  for k, v in next, env do view[k] = v end
  return setmetatable(view, { __index = app_globals() })
end

-- The candidates, as many as fit well within a wire message.
local function completions(env, word)
  local ok, names = pcall(complete.candidates, word, completion_env(env))
  local list, size = {}, 0
  for _, name in ipairs(ok and names or {}) do
    size = size + #name + 3
    if #list >= M.MAX_COMPLETIONS or size > wire.MAX_LINE // 2 then break end
    list[#list + 1] = name
  end
  if #list == 0 then return json.empty_array end
  return list
end

local function on_message(server, conn, msg)
  if msg.t == "complete" and type(msg.s) == "string" and math.type(msg.id) == "integer" then
    -- Answered at once, from the read callback: completion runs no code of
    -- the app, so it may even while the session runs a line.
    send(conn, { t = "completion", id = msg.id, list = completions(conn.session.env, msg.s) })
  elseif msg.t == "line" and type(msg.s) == "string" then
    conn.lines[#conn.lines + 1] = msg.s
    notify(conn)
  elseif msg.t == "int" then
    -- A running input is cancelled and its task sends the next prompt;
    -- otherwise nothing will, so prompt again here.
    if conn.session:interrupt() ~= "cancelled" and conn.waiter then
      send(conn, { t = "prompt", s = conn.session:prompt() })
    end
  end
end

local function on_read(server, conn, split)
  return function(err, data)
    if err or not data then return close_conn(server, conn) end
    local msgs, bad = split(data)
    for _, msg in ipairs(msgs) do
      if conn.closed then return end
      on_message(server, conn, msg)
    end
    if bad then close_conn(server, conn) end
  end
end

local function to_text(...)
  local n = select("#", ...)
  local parts = {}
  for i = 1, n do parts[i] = tostring((select(i, ...))) end
  return table.concat(parts, "\t") .. "\n"
end

-- The session's loop: prompt, read, evaluate, until the client leaves.
local function serve_client(server, conn)
  send(conn, { t = "hello", pid = uv.os_getpid(), version = core.versions().tycho })
  while not conn.closed do
    send(conn, { t = "prompt", s = conn.session:prompt() })
    local line = next_line(conn)
    if not line then break end
    if conn.session:feed(line) == "exit" then break end
  end
  close_conn(server, conn)
end

local function accept(server)
  local pipe = uv.new_pipe(false)
  local ok = server.handle:accept(pipe)
  if not ok or server.count >= M.MAX_CLIENTS then
    pipe:close()
    return
  end
  local conn = { pipe = pipe, lines = {}, eof = false, closed = false }
  local env = setmetatable({}, { __index = function(_, k) return app_globals()[k] end })
  env.print = function(...) send(conn, { t = "out", s = to_text(...) }) end
  conn.session = session.new({
    env = env,
    write = function(text) send(conn, { t = "out", s = text }) end,
    write_err = function(text) send(conn, { t = "err", s = text }) end,
  })
  server.conns[conn] = true
  server.count = server.count + 1
  pipe:read_start(on_read(server, conn, wire.splitter()))
  conn.task = core.spawn(serve_client, server, conn)
end

-- ---------------------------------------------------------------------
-- The listening socket

-- True when path is a socket nobody listens on (left by a process that
-- died without closing its server). Needs a task to try connecting.
local function stale(path)
  local st = uv.fs_stat(path)
  if not st or st.type ~= "socket" or not core.in_task() then return false end
  local probe = uv.new_pipe(false)
  local co, tok = core.token()
  probe:connect(path, function(err) core.wake(co, tok, err) end)
  local err = core.park(function() if not probe:is_closing() then probe:close() end end)
  if not probe:is_closing() then probe:close() end
  return err ~= nil and tostring(err):find("ECONNREFUSED", 1, true) ~= nil
end

local function bind(handle, path)
  local ok, err, code = handle:bind(path)
  if ok or code ~= "EADDRINUSE" or not stale(path) then return ok, err, code end
  os.remove(path)
  return handle:bind(path)
end

---Opens a REPL server on a Unix socket at `path` (mode 0600).
---Expected failures (path in use, no such directory) return nil, message, code.
---@param path string
---@return table? server with :close(), .path, :clients(); or nil, err, code
function M.listen(path)
  check.arg(1, "listen", path, "string")
  local handle = uv.new_pipe(false)
  local ok, err, code = bind(handle, path)
  if not ok then
    handle:close()
    return nil, err, code
  end
  -- Before listen() nobody can connect, so tightening the mode here
  -- leaves no window in which another user could.
  ok, err, code = uv.fs_chmod(path, tonumber("600", 8))
  local server = setmetatable({ path = path, handle = handle, conns = {}, count = 0 }, Server)
  if ok then
    ok, err, code = handle:listen(M.BACKLOG, function(lerr)
      if not lerr then accept(server) end
    end)
  end
  if not ok then
    handle:close()
    os.remove(path)
    return nil, err, code
  end
  return server
end

---Number of attached clients.
---@return integer
function Server:clients()
  return self.count
end

---Stops listening, detaches every client (cancelling what they run) and
---removes the socket file. Idempotent.
function Server:close()
  if self.closed then return end
  self.closed = true
  if not self.handle:is_closing() then self.handle:close() end
  for conn in pairs(self.conns) do close_conn(self, conn) end
  os.remove(self.path)
end

function Server:__tostring()
  return ("repl.server<%s, %d clients>"):format(self.path, self.count)
end

return M
