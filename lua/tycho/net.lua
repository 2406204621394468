--- tycho.net: TCP and Unix-domain servers and clients, and UDP sockets, in
--- Tycho's awaiting style. Connections are tycho.stream objects; a server
--- with a `handler` runs each accepted connection in its own task and closes
--- the connection when the handler returns, fails or is cancelled.
local core = require "tycho.core"
local uv = require "luv"
local check = require "tycho.check"
local stream = require "tycho.stream"
local dns = require "tycho.dns"

local token, wake = core.token, core.wake
local fail, wait = stream.fail, stream.wait

local M = {}

M.DEFAULT_BACKLOG = 511
M.MAX_PENDING_ACCEPTS = 1024 -- connections queued for :accept() at most
M.MAX_DATAGRAMS = 1024       -- received datagrams queued for :receive()

local TIMEDOUT = "ETIMEDOUT: connection timed out"

-- Resolves host to a list of numeric addresses (a literal is its own).
local function addresses(host)
  if dns.is_ip(host) then return { host } end
  return dns.resolve(host)
end

local function check_port(n, fname, port)
  check.arg(n, fname, port, "number")
  if port ~= math.floor(port) or port < 0 or port > 65535 then
    error(("bad argument #%d to '%s' (port must be an integer in 0..65535)"):format(n, fname), 3)
  end
end

-- ---------------------------------------------------------------------
-- Clients

-- Connects handle h (a fresh tcp or pipe) with connect(h, cb); awaits the
-- callback or the deadline. The handle is closed on failure and cancel.
local function await_connect(h, start, seconds)
  local co, tok = token()
  local ok, err = start(function(cerr) wake(co, tok, cerr or false) end)
  if not ok then
    h:close()
    return err
  end
  local why = wait(co, tok, seconds, function() h:close() end)
  if why == "timeout" then why = TIMEDOUT end
  if why then
    if not h:is_closing() then h:close() end
    return why
  end
end

---Opens a TCP connection to host:port. `opts.timeout` bounds the connect
---(seconds, default none); `opts.nodelay` (default true) disables Nagle.
---Yields. Returns a stream, or nil, message, code.
---@param host string
---@param port integer
---@param opts? {timeout?: number, nodelay?: boolean}
function M.connect(host, port, opts)
  check.arg(1, "connect", host, "string")
  check_port(2, "connect", port)
  check.opt(3, "connect", opts, "table")
  opts = opts or {}
  local deadline = opts.timeout and uv.hrtime() + opts.timeout * 1e9
  local addrs, rerr, rcode = addresses(host)
  if not addrs then return nil, rerr, rcode end
  local last
  for _, ip in ipairs(addrs) do
    local left = deadline and math.max(0, (deadline - uv.hrtime()) / 1e9)
    local h = uv.new_tcp()
    local err = await_connect(h, function(cb) return h:connect(ip, port, cb) end, left)
    if not err then
      local conn = stream.wrap(h, "tcp")
      if opts.nodelay ~= false then h:nodelay(true) end
      return conn
    end
    last = err
    if err == TIMEDOUT then break end
  end
  local _, msg, code = fail(last)
  return nil, ("%s (connecting to %s:%d)"):format(msg, host, port), code
end

---Opens a connection to the Unix-domain socket at `path`. Yields.
---@param path string
---@param opts? {timeout?: number}
function M.connect_unix(path, opts)
  check.arg(1, "connect_unix", path, "string")
  check.opt(2, "connect_unix", opts, "table")
  local h = uv.new_pipe(false)
  local err = await_connect(h, function(cb) return h:connect(path, cb) end,
    opts and opts.timeout)
  if err then
    local _, msg, code = fail(err)
    return nil, ("%s (connecting to %s)"):format(msg, path), code
  end
  return stream.wrap(h, "pipe")
end

-- ---------------------------------------------------------------------
-- Servers

local Server = {}
Server.__index = Server

-- The state behind a server or socket object; raises once it is closed.
local function live(self, fname, what)
  local s = self._s
  if s.closed then error(("bad argument #1 to '%s' (%s is closed)"):format(fname, what), 3) end
  return s
end
local function server_state(self, fname) return live(self, fname, "server") end

-- Runs the user's handler in the connection's own task; `<close>` closes
-- the connection however the handler ends (return, error, cancel).
local function serve_one(handler, conn)
  local c <close> = conn
  return handler(c)
end

local function on_connection(s, err)
  if err or s.closed then return end
  local h = s.kind == "tcp" and uv.new_tcp() or uv.new_pipe(false)
  if not s.h:accept(h) then
    h:close()
    return
  end
  local conn = stream.wrap(h, s.kind)
  if s.kind == "tcp" and s.nodelay then h:nodelay(true) end
  if s.handler then
    core.spawn(serve_one, s.handler, conn)
    return
  end
  if s.aco then
    local co, tok = s.aco, s.atok
    s.aco, s.atok = nil, nil
    if wake(co, tok, conn) then return end
  end
  if #s.pending >= M.MAX_PENDING_ACCEPTS then
    conn:close()
    return
  end
  s.pending[#s.pending + 1] = conn
end

---Awaits the next connection of a server started without a handler.
---`timeout` in seconds (default: none). Returns a stream, or nil, message,
---code (also when the server is closed meanwhile). Yields.
---@param timeout? number
function Server:accept(timeout)
  local s = server_state(self, "accept")
  check.opt(1, "accept", timeout, "number")
  if s.handler then error("bad argument #1 to 'accept' (server has a handler)", 2) end
  if #s.pending > 0 then return table.remove(s.pending, 1) end
  if s.aco then error("another task is already accepting on this server", 2) end
  local co, tok = token()
  s.aco, s.atok = co, tok
  local r = wait(co, tok, timeout, function() s.aco, s.atok = nil, nil end)
  s.aco, s.atok = nil, nil
  if r == "timeout" then return fail(TIMEDOUT) end
  if r == "closed" then return fail("ECLOSED: server is closed") end
  return r
end

---Stops listening; connections already accepted stay open. Idempotent.
function Server:close()
  local s = self._s
  if s.closed then return end
  s.closed = true
  s.h:close()
  for _, c in ipairs(s.pending) do c:close() end
  s.pending = {}
  if s.aco then
    local co, tok = s.aco, s.atok
    s.aco, s.atok = nil, nil
    wake(co, tok, "closed")
  end
  if s.path and s.unlink then uv.fs_unlink(s.path) end
end

function Server:__close() self:close() end

-- A server with a handler is kept by its listen callback like a daemon;
-- one used through :accept() belongs to whoever holds it.
function Server:__gc()
  if not self._s.handler then pcall(Server.close, self) end
end

function Server:__tostring()
  local s = self._s
  local where = s.path or ("%s:%d"):format(s.host, s.port or 0)
  return ("server<%s%s>"):format(where, s.closed and " closed" or "")
end

local function start_listen(s, backlog)
  local ok, err = s.h:listen(backlog, function(lerr) on_connection(s, lerr) end)
  if not ok then
    s.h:close()
    return err
  end
end

---Listens for TCP connections on `host` (default "127.0.0.1") and `port`
---(0 picks a free one), or on the Unix socket `path`. With `handler`, each
---connection runs `handler(conn)` in its own task; without, use
---`server:accept()`. Returns a server with `.port` (or `.path`), or nil,
---message, code. Yields only to resolve a host name.
---@param opts {host?: string, port?: integer, path?: string, backlog?: integer, handler?: fun(conn: table), nodelay?: boolean}
function M.listen(opts)
  check.arg(1, "listen", opts, "table")
  check.opt(1, "listen", opts.handler, "function")
  local backlog = opts.backlog or M.DEFAULT_BACKLOG
  check.arg(1, "listen", backlog, "number")
  local s = { handler = opts.handler, pending = {}, closed = false,
              nodelay = opts.nodelay ~= false }
  if opts.path then
    check.arg(1, "listen", opts.path, "string")
    s.kind, s.path, s.unlink = "pipe", opts.path, true
    s.h = uv.new_pipe(false)
    local ok, err = s.h:bind(opts.path)
    if not ok then
      s.h:close()
      return fail(err)
    end
  else
    local host = opts.host or "127.0.0.1"
    check.arg(1, "listen", host, "string")
    check_port(1, "listen", opts.port or 0)
    local addrs, rerr, rcode = addresses(host)
    if not addrs then return nil, rerr, rcode end
    s.kind = "tcp"
    s.h = uv.new_tcp()
    local ok, err = s.h:bind(addrs[1], opts.port or 0)
    if not ok then
      s.h:close()
      return fail(err)
    end
  end
  local err = start_listen(s, backlog)
  if err then return fail(err) end
  local srv = setmetatable({ _s = s }, Server)
  if s.kind == "tcp" then
    local a = s.h:getsockname()
    s.host, s.port = a.ip, a.port
    srv.host, srv.port = a.ip, a.port
  else
    srv.path = s.path
  end
  return srv
end

-- ---------------------------------------------------------------------
-- UDP

local Udp = {}
Udp.__index = Udp

local function udp_state(self, fname) return live(self, fname, "socket") end

local function udp_close(s)
  if s.closed then return end
  s.closed = true
  if not s.h:is_closing() then s.h:close() end
  if s.rco then
    local co, tok = s.rco, s.rtok
    s.rco, s.rtok = nil, nil
    wake(co, tok, "closed")
  end
end

---Sends one datagram to host:port. Yields until the kernel took it.
---Returns true, or nil, message, code.
---@param data string
---@param host string
---@param port integer
function Udp:send(data, host, port)
  local s = udp_state(self, "send")
  check.arg(1, "send", data, "string")
  check.arg(2, "send", host, "string")
  check_port(3, "send", port)
  local addrs, rerr, rcode = addresses(host)
  if not addrs then return nil, rerr, rcode end
  local co, tok = token()
  local ok, err = s.h:send(data, addrs[1], port, function(serr) wake(co, tok, serr or false) end)
  if not ok then return fail(err) end
  local why = wait(co, tok, nil)
  if why then return fail(why) end
  return true
end

local function on_datagram(s, err, data, addr)
  if err then
    s.rerr = err
  elseif data and addr then
    if #s.queue >= M.MAX_DATAGRAMS then return end -- UDP may drop; so do we
    s.queue[#s.queue + 1] = { data, { host = addr.ip, port = addr.port, family = addr.family } }
  else
    return
  end
  if s.rco then
    local co, tok = s.rco, s.rtok
    s.rco, s.rtok = nil, nil
    wake(co, tok)
  end
end

---Awaits the next datagram: returns data and the sender `{host=, port=}`,
---or nil, message, code (timeout in seconds, close, error). Yields.
---@param timeout? number
function Udp:receive(timeout)
  local s = udp_state(self, "receive")
  check.opt(1, "receive", timeout, "number")
  if not s.receiving then
    local ok, err = s.h:recv_start(function(e, d, a) on_datagram(s, e, d, a) end)
    if not ok then return fail(err) end
    s.receiving = true
  end
  while #s.queue == 0 do
    if s.rerr then
      local e = s.rerr
      s.rerr = nil
      return fail(e)
    end
    if s.rco then error("another task is already receiving on this socket", 2) end
    local co, tok = token()
    s.rco, s.rtok = co, tok
    local why = wait(co, tok, timeout, function() s.rco, s.rtok = nil, nil end)
    s.rco, s.rtok = nil, nil
    if why == "timeout" then return fail(TIMEDOUT) end
    if why == "closed" then return fail("ECLOSED: socket is closed") end
  end
  local d = table.remove(s.queue, 1)
  return d[1], d[2]
end

---Joins the multicast group `group` on interface `iface` (default: any).
function Udp:join(group, iface)
  local s = udp_state(self, "join")
  check.arg(1, "join", group, "string")
  local ok, err = s.h:set_membership(group, iface, "join")
  if not ok then return fail(err) end
  return true
end

---Leaves a multicast group joined with :join().
function Udp:leave(group, iface)
  local s = udp_state(self, "leave")
  check.arg(1, "leave", group, "string")
  local ok, err = s.h:set_membership(group, iface, "leave")
  if not ok then return fail(err) end
  return true
end

local function setter(name, method, kind)
  Udp[name] = function(self, v)
    local s = udp_state(self, name)
    check.arg(1, name, v, kind)
    local ok, err = s.h[method](s.h, v)
    if not ok then return fail(err) end
    return true
  end
end
setter("set_broadcast", "set_broadcast", "boolean")
setter("set_multicast_loop", "set_multicast_loop", "boolean")
setter("set_multicast_ttl", "set_multicast_ttl", "number")
setter("set_ttl", "set_ttl", "number")
setter("set_multicast_interface", "set_multicast_interface", "string")

---This socket's address `{host=, port=, family=}`.
function Udp:local_address()
  local s = udp_state(self, "local_address")
  local a, err = s.h:getsockname()
  if not a then return fail(err) end
  return { host = a.ip, port = a.port, family = a.family }
end

---Closes the socket. Idempotent; a waiting receive fails with "closed".
function Udp:close() udp_close(self._s) end
function Udp:__close() udp_close(self._s) end
function Udp:__gc() if not self._s.closed then pcall(udp_close, self._s) end end
function Udp:__tostring()
  return ("udp<%s>"):format(self._s.closed and "closed" or tostring(self.port))
end

---Creates a UDP socket. With `host`/`port` it is bound there (port 0 picks
---one); `broadcast = true` allows sending to broadcast addresses; `reuse =
---true` lets several sockets bind one multicast port. Returns the socket
---with `.port` when bound, or nil, message, code.
---@param opts? {host?: string, port?: integer, broadcast?: boolean, reuse?: boolean}
function M.udp(opts)
  check.opt(1, "udp", opts, "table")
  opts = opts or {}
  local s = { queue = {}, closed = false }
  s.h = uv.new_udp()
  local sock = setmetatable({ _s = s }, Udp)
  if opts.host or opts.port then
    local host = opts.host or "127.0.0.1"
    check.arg(1, "udp", host, "string")
    check_port(1, "udp", opts.port or 0)
    local addrs, rerr, rcode = addresses(host)
    if not addrs then
      udp_close(s)
      return nil, rerr, rcode
    end
    local ok, err = s.h:bind(addrs[1], opts.port or 0, { reuseaddr = opts.reuse or nil })
    if not ok then
      udp_close(s)
      return fail(err)
    end
    sock.port = s.h:getsockname().port
  end
  if opts.broadcast then
    local ok, err = s.h:set_broadcast(true)
    if not ok then
      udp_close(s)
      return fail(err)
    end
  end
  return sock
end

return M
