-- Specs for the request body's back-pressure in src/http/conn.c: reading
-- stops while more than 256 KiB (TY_BODY_HIGH_WATER) of a body waits for a
-- handler that streams it, and goes on when the handler takes it or ends.
-- Real sockets on 127.0.0.1; whether the server has read what the client
-- sent is seen in the kernel's socket queues (/proc/net/tcp).
local tycho = require "tycho"
local core = require "tycho.core"
local support = require "spec.support.net"

local HIGH_WATER = 256 * 1024
local ANSWER = 32 * 1024 * 1024 -- more than loopback socket buffers hold

-- The send and receive queue lengths of the TCP socket from local port
-- lport to remote port rport, or nil when there is none.
local function queues(lport, rport)
  for line in io.lines("/proc/net/tcp") do
    local l, r, tx, rx = line:match("^%s*%d+: %x+:(%x+) %x+:(%x+) %x+ (%x+):(%x+)")
    if l and tonumber(l, 16) == lport and tonumber(r, 16) == rport then
      return tonumber(tx, 16), tonumber(rx, 16)
    end
  end
end

-- Waits (bounded) until the server has read every byte conn sent to it.
local function await_read_by_server(conn, server_port)
  local port = conn:local_address().port
  support.wait_for(function()
    local tx = queues(port, server_port)
    local _, rx = queues(server_port, port)
    return conn:write_queue_size() == 0 and tx == 0 and rx == 0
  end, "the server to read the body sent so far")
end

-- A server whose handler parks until gate.open() (which waits for it to
-- park first), then runs after(req).
local function gated_server(opts, after)
  local gate = {}
  function gate.open()
    support.wait_for(function() return gate.wake ~= nil end, "the handler to park")
    local wake = gate.wake
    gate.wake = nil
    wake()
  end
  opts.port = 0
  opts.handler = function(req)
    local co, tok = core.token()
    gate.wake = function() core.wake(co, tok) end
    core.park()
    return after(req)
  end
  return assert(tycho.http.serve(opts)), gate
end

-- Reads one response with a Content-Length body from conn; returns its
-- status and body length.
local function read_response(conn)
  local status = tonumber(assert(conn:read_line()):match("^HTTP/1%.1 (%d+)"))
  local len
  for line in conn:lines() do
    if line == "" then break end
    len = tonumber(line:match("^[Cc]ontent%-[Ll]ength: (%d+)")) or len
  end
  return status, #assert(conn:read_exactly(len))
end

describe("request body back-pressure", function()
  it("restarts the body timeout when reading goes on after a large answer drained", function()
    -- The handler never reads the body: reading stopped with 256 KiB + 1
    -- unread, and the answer (more than the kernel takes at once) is still
    -- queued when the handler ends, so reading goes on only once it has
    -- drained. A client that then sends nothing more must still meet the
    -- body timeout (0.3 s; the read gives up after 15 s).
    local srv, gate = gated_server({ body_timeout = 0.3 }, function()
      return ("a"):rep(ANSWER)
    end)
    local conn = assert(tycho.net.connect("127.0.0.1", srv.port))
    conn:set_timeout(15)
    assert(conn:write("POST / HTTP/1.1\r\nHost: t\r\nContent-Length: 1048576\r\n\r\n"))
    assert(conn:write(("b"):rep(HIGH_WATER + 1)))
    await_read_by_server(conn, srv.port)
    gate.open()
    local status, len = read_response(conn)
    assert.are.equal(200, status)
    assert.are.equal(ANSWER, len)
    local data, err = conn:read()
    assert.is_nil(data, "the server answered again")
    assert.is_nil(tostring(err):match("ETIMEDOUT"), "the connection outlived its body timeout")
    conn:close()
    srv:close()
  end)

  it("drops an unread body after the handler ends and answers the next request", function()
    local srv, gate = gated_server({}, function(req) return "first " .. req.path end)
    local conn = assert(tycho.net.connect("127.0.0.1", srv.port))
    conn:set_timeout(15)
    local size = 4 * HIGH_WATER
    assert(conn:write(("POST /a HTTP/1.1\r\nHost: t\r\nContent-Length: %d\r\n\r\n"):format(size)))
    assert(conn:write(("b"):rep(HIGH_WATER + 1)))
    await_read_by_server(conn, srv.port)
    gate.open()
    local status, len = read_response(conn)
    assert.are.equal(200, status)
    assert.are.equal(#"first /a", len)
    assert(conn:write(("b"):rep(size - HIGH_WATER - 1)))
    assert(conn:write("GET /b HTTP/1.1\r\nHost: t\r\n\r\n"))
    gate.open()
    status, len = read_response(conn)
    assert.are.equal(200, status)
    assert.are.equal(#"first /b", len)
    conn:close()
    srv:close()
  end)

  it("goes on reading when a parked streaming handler takes the body", function()
    local size = 4 * HIGH_WATER
    local got = 0
    local srv, gate = gated_server({}, function(req)
      for chunk in req:chunks() do got = got + #chunk end
      return "got " .. got
    end)
    local conn = assert(tycho.net.connect("127.0.0.1", srv.port))
    conn:set_timeout(15)
    assert(conn:write(("POST / HTTP/1.1\r\nHost: t\r\nContent-Length: %d\r\n\r\n"):format(size)))
    assert(conn:write(("b"):rep(HIGH_WATER + 1)))
    await_read_by_server(conn, srv.port)
    gate.open()
    assert(conn:write(("b"):rep(size - HIGH_WATER - 1)))
    local status, len = read_response(conn)
    assert.are.equal(200, status)
    assert.are.equal(#("got " .. size), len)
    assert.are.equal(size, got)
    conn:close()
    srv:close()
  end)
end)
