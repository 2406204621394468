-- Specs for tycho.net and tycho.stream (lua/tycho/net.lua, stream.lua):
-- real sockets on 127.0.0.1 with port 0, Unix sockets in a temporary
-- directory, UDP datagrams, back-pressure and the fd-leak check.
local tycho = require "tycho"
local support = require "spec.support.net"
local net = tycho.net

local wait_for, open_fds = support.wait_for, support.open_fds

describe("tcp", function()
  it("echoes lines between a client and a handler server", function()
    local srv, stats = support.echo_server()
    local c = assert(net.connect("127.0.0.1", srv.port))
    assert(c:write("hello\r\nworld\n"))
    assert.are.equal("hello", c:read_line())
    assert.are.equal("world", c:read_line())
    assert(c:shutdown())
    assert.is_nil(c:read())
    c:close()
    wait_for(function() return stats.done == 1 end, "the handler to finish")
    assert.are.equal(1, stats.conns)
    srv:close()
  end)

  it("resolves localhost when connecting and listening", function()
    local srv = assert(net.listen{ host = "localhost", port = 0, handler = function(conn)
      conn:write("hi")
    end })
    local c = assert(net.connect("localhost", srv.port))
    assert.are.equal("hi", c:read())
    assert.is_nil(c:read()) -- the handler returned: its connection closed
    c:close()
    srv:close()
  end)

  it("works over IPv6 loopback", function()
    local srv = assert(net.listen{ host = "::1", port = 0, handler = function(conn)
      conn:write("over v6")
    end })
    assert.are.equal("::1", srv.host)
    local c <close> = assert(net.connect("::1", srv.port))
    assert.are.equal("over v6", c:read())
    assert.are.equal("inet6", c:remote_address().family)
    srv:close()
  end)

  it("accepts without a handler and exchanges bytes both ways", function()
    local srv = assert(net.listen{ port = 0 })
    local client = tycho.spawn(function()
      local c = assert(net.connect("127.0.0.1", srv.port))
      c:write("ping")
      local answer = c:read()
      c:close()
      return answer
    end)
    local conn = assert(srv:accept(5))
    assert.are.equal("ping", conn:read_exactly(4))
    conn:write("pong")
    assert.are.equal("pong", client:join())
    assert.is_nil(conn:read())
    conn:close()
    srv:close()
  end)

  it("reads at most n bytes, exactly n bytes, and reports a short stream", function()
    local srv = assert(net.listen{ port = 0, handler = function(conn)
      conn:write("abcdefghij")
    end })
    local c <close> = assert(net.connect("127.0.0.1", srv.port))
    assert.are.equal("abc", c:read_exactly(3))
    local part = c:read(4)
    assert.is_true(#part >= 1 and #part <= 4)
    assert.are.equal("defg", part .. (#part < 4 and c:read_exactly(4 - #part) or ""))
    local data, err, code = c:read_exactly(10)
    assert.is_nil(data)
    assert.are.equal("EOF", code)
    assert.matches("after 3 of 10 bytes", err)
    assert.are.equal("hij", c:read())
    assert.is_nil(c:read())
    srv:close()
  end)

  it("reads a 10 MiB block exactly, across many kernel reads", function()
    local piece = ("0123456789abcdef"):rep(4096)
    local srv = assert(net.listen{ port = 0, handler = function(conn)
      for i = 1, 160 do conn:write(piece:sub(1, -2) .. string.char(65 + i % 26)) end
    end })
    local c <close> = assert(net.connect("127.0.0.1", srv.port))
    local t0 = tycho.hrtime()
    local block = assert(c:read_exactly(160 * #piece))
    assert.are.equal(160 * #piece, #block)
    assert.are.equal("B", block:sub(#piece, #piece))
    assert.are.equal(string.char(65 + 160 % 26), block:sub(-1))
    assert.is_nil(c:read())
    local ms = (tycho.hrtime() - t0) / 1e6
    assert.is_true(ms < 10000, "took " .. ms .. " ms")
    srv:close()
  end)

  it("iterates lines, returning an unterminated last line", function()
    local srv = assert(net.listen{ port = 0, handler = function(conn)
      conn:write("one\ntwo\r\nthree")
    end })
    local c <close> = assert(net.connect("127.0.0.1", srv.port))
    local lines = {}
    for line in c:lines() do lines[#lines + 1] = line end
    assert.are.same({ "one", "two", "three" }, lines)
    srv:close()
  end)

  it("refuses an over-long line", function()
    local srv = assert(net.listen{ port = 0, handler = function(conn)
      conn:write(("x"):rep(5000))
      conn:read()
    end })
    local c <close> = assert(net.connect("127.0.0.1", srv.port))
    c:set_limits{ max_line = 1000 }
    local line, err, code = c:read_line()
    assert.is_nil(line)
    assert.are.equal("ELINETOOLONG", code)
    assert.matches("longer than 1000", err)
    srv:close()
  end)

  it("reports local and remote addresses and takes socket options", function()
    local srv = assert(net.listen{ port = 0 })
    local c <close> = assert(net.connect("127.0.0.1", srv.port))
    local s <close> = assert(srv:accept(5))
    assert.are.equal(srv.port, c:remote_address().port)
    assert.are.equal(c:local_address().port, s:remote_address().port)
    assert.are.equal("127.0.0.1", s:local_address().host)
    assert.are.equal(c, c:set_nodelay(true))
    assert.are.equal(c, c:set_keepalive(true, 30))
    srv:close()
  end)

  it("returns nil, message, code for a refused connection", function()
    local srv = assert(net.listen{ port = 0 })
    local port = srv.port
    srv:close()
    local c, err, code = net.connect("127.0.0.1", port)
    assert.is_nil(c)
    assert.are.equal("ECONNREFUSED", code)
    assert.matches("^ECONNREFUSED: connection refused %(connecting to 127%.0%.0%.1:" .. port, err)
  end)

  it("fails a listen on a port in use", function()
    local srv = assert(net.listen{ port = 0 })
    local again, err, code = net.listen{ port = srv.port }
    assert.is_nil(again)
    assert.are.equal("EADDRINUSE", code)
    assert.matches("EADDRINUSE", err)
    srv:close()
  end)

  it("times out a connect that gets no answer", function()
    local port, close = support.full_listener()
    local t0 = tycho.hrtime()
    local c, err, code = net.connect("127.0.0.1", port, { timeout = 0.1 })
    local ms = (tycho.hrtime() - t0) / 1e6
    close()
    assert.is_nil(c)
    assert.are.equal("ETIMEDOUT", code)
    assert.matches("timed out %(connecting to 127%.0%.0%.1:" .. port, err)
    assert.is_true(ms >= 90 and ms < 5000, "took " .. ms .. " ms")
  end)

  it("times out a read on a silent peer", function()
    local srv = assert(net.listen{ port = 0 })
    local c <close> = assert(net.connect("127.0.0.1", srv.port))
    local s <close> = assert(srv:accept(5))
    c:set_timeout(0.05)
    local t0 = tycho.hrtime()
    local data, err, code = c:read()
    assert.is_nil(data)
    assert.are.equal("ETIMEDOUT", code)
    assert.matches("timed out", err)
    assert.is_true((tycho.hrtime() - t0) / 1e6 >= 40)
    -- the stream still works after a timeout
    s:write("late")
    assert.are.equal("late", c:read())
    srv:close()
  end)

  it("times out an accept", function()
    local srv = assert(net.listen{ port = 0 })
    local conn, err, code = srv:accept(0.02)
    assert.is_nil(conn)
    assert.are.equal("ETIMEDOUT", code)
    assert.is_string(err)
    srv:close()
  end)

  it("wakes a waiting reader with an error when the stream is closed", function()
    local srv = assert(net.listen{ port = 0 })
    local c = assert(net.connect("127.0.0.1", srv.port))
    local s <close> = assert(srv:accept(5))
    local reader = tycho.spawn(function() return c:read() end)
    wait_for(function() return reader:status() == "waiting" end, "the reader to park")
    c:close()
    local data, err, code = reader:join()
    assert.is_nil(data)
    assert.are.equal("ECLOSED", code)
    assert.matches("closed", err)
    assert.has_error(function() c:read() end, "bad argument #1 to 'read' (stream is closed)")
    assert.is_nil(s:read()) -- the peer sees EOF
    srv:close()
  end)

  it("wakes a waiting accept with an error when the server is closed", function()
    local srv = assert(net.listen{ port = 0 })
    local acceptor = tycho.spawn(function() return srv:accept() end)
    wait_for(function() return acceptor:status() == "waiting" end, "accept to park")
    srv:close()
    local conn, _, code = acceptor:join()
    assert.is_nil(conn)
    assert.are.equal("ECLOSED", code)
  end)

  it("leaves the stream usable when a reading task is cancelled", function()
    local srv = assert(net.listen{ port = 0 })
    local c <close> = assert(net.connect("127.0.0.1", srv.port))
    local s <close> = assert(srv:accept(5))
    local reader = tycho.spawn(function() return c:read() end)
    wait_for(function() return reader:status() == "waiting" end, "the reader to park")
    reader:cancel()
    assert.are.equal("cancelled", reader:status())
    s:write("after")
    assert.are.equal("after", c:read())
    srv:close()
  end)

  it("closes a handler's connection when its task fails", function()
    local failed = 0
    local srv = assert(net.listen{ port = 0, handler = function(conn)
      conn:read()
      failed = failed + 1
      error("handler blew up", 0)
    end })
    local c <close> = assert(net.connect("127.0.0.1", srv.port))
    c:write("x")
    assert.is_nil(c:read())
    assert.are.equal(1, failed)
    srv:close()
  end)

  it("closes a stream that was garbage collected", function()
    local srv = assert(net.listen{ port = 0 })
    do
      local c = assert(net.connect("127.0.0.1", srv.port))
      c:write("bye")
    end
    local s <close> = assert(srv:accept(5))
    assert.are.equal("bye", s:read())
    collectgarbage()
    collectgarbage()
    s:set_timeout(5)
    local data, err = s:read()
    assert.is_nil(data)
    assert.is_nil(err) -- a clean EOF, not the timeout
    srv:close()
  end)

  it("applies back-pressure to a writer when the reader is slow", function()
    local chunk = ("0123456789abcdef"):rep(4096) -- 64 KiB
    local total = 256                           -- 16 MiB in all
    local srv = assert(net.listen{ port = 0 })
    local c <close> = assert(net.connect("127.0.0.1", srv.port))
    local s <close> = assert(srv:accept(5))
    local sent, max_queue = 0, 0
    local writer = tycho.spawn(function()
      for _ = 1, total do
        assert(s:write(chunk))
        sent = sent + 1
        max_queue = math.max(max_queue, s:write_queue_size())
      end
      s:shutdown()
    end)
    -- Nobody reads: the writer must end up parked, not done.
    wait_for(function() return writer:status() == "waiting" and s:write_queue_size() > 0 end,
      "the writer to block")
    local blocked_at = sent
    for _ = 1, 20 do coroutine.yield() end
    assert.are.equal(blocked_at, sent) -- still blocked while nobody reads
    assert.is_true(sent < total, "writer was not held back")
    local received = 0
    while true do
      local data = c:read()
      if not data then break end
      received = received + #data
    end
    writer:join()
    assert.are.equal(total * #chunk, received)
    assert.is_true(max_queue <= 64 * 1024 + #chunk, "queue grew to " .. max_queue)
    srv:close()
  end)

  it("names bad arguments", function()
    assert.has_error(function() net.connect(nil, 80) end,
      "bad argument #1 to 'connect' (string expected, got nil)")
    assert.has_error(function() net.connect("127.0.0.1", 70000) end,
      "bad argument #2 to 'connect' (port must be an integer in 0..65535)")
    assert.has_error(function() net.listen() end,
      "bad argument #1 to 'listen' (table expected, got nil)")
    local srv = assert(net.listen{ port = 0, handler = function() end })
    assert.has_error(function() srv:accept() end,
      "bad argument #1 to 'accept' (server has a handler)")
    srv:close()
    local srv2 = assert(net.listen{ port = 0 })
    local c <close> = assert(net.connect("127.0.0.1", srv2.port))
    assert.has_error(function() c:write(42) end,
      "bad argument #1 to 'write' (string expected, got number)")
    srv2:close()
  end)

  it("returns to the same number of fds after 10 000 connections", function()
    local srv, stats = support.echo_server()
    local before = open_fds()
    for i = 1, 10000 do
      local c = assert(net.connect("127.0.0.1", srv.port))
      if i % 1000 == 0 then
        c:write("x\n")
        assert.are.equal("x", c:read_line())
      end
      c:close()
    end
    wait_for(function() return stats.done == 10000 end, "all handlers to finish")
    wait_for(function() return open_fds() == before end, "fds to be released")
    assert.are.equal(before, open_fds())
    assert.are.equal(10000, stats.conns)
    srv:close()
  end)
end)

describe("unix sockets", function()
  local dir
  before_each(function() dir = support.tmpdir("net") end)
  after_each(function() support.rmdir(dir) end)

  it("echo between a server and a client", function()
    local path = dir .. "/echo.sock"
    local srv, stats = support.echo_server{ path = path }
    assert.are.equal(path, srv.path)
    local c = assert(net.connect_unix(path))
    c:write("over unix\n")
    assert.are.equal("over unix", c:read_line())
    assert.are.equal(path, c:remote_address().path)
    c:close()
    wait_for(function() return stats.done == 1 end, "the handler to finish")
    srv:close()
    assert.is_nil(tycho.uv.fs_stat(path)) -- the socket file is removed
  end)

  it("fail to connect to a missing path", function()
    local c, err, code = net.connect_unix(dir .. "/missing.sock")
    assert.is_nil(c)
    assert.are.equal("ENOENT", code)
    assert.matches("missing%.sock", err)
  end)
end)

describe("udp", function()
  it("echoes datagrams and reports the sender", function()
    local server = assert(net.udp{ host = "127.0.0.1", port = 0 })
    local client = assert(net.udp{ port = 0 })
    local echoed = 0
    local echo = tycho.spawn(function()
      for _ = 1, 3 do
        local data, from = assert(server:receive(5))
        assert(server:send(data:upper(), from.host, from.port))
        echoed = echoed + 1
      end
    end)
    for _, word in ipairs{ "one", "two", "three" } do
      assert(client:send(word, "127.0.0.1", server.port))
      local reply, from = assert(client:receive(5))
      assert.are.equal(word:upper(), reply)
      assert.are.equal(server.port, from.port)
    end
    echo:join()
    assert.are.equal(3, echoed)
    client:close()
    server:close()
  end)

  it("times out a receive and fails a receive on close", function()
    local sock = assert(net.udp{ port = 0 })
    local data, _, code = sock:receive(0.02)
    assert.is_nil(data)
    assert.are.equal("ETIMEDOUT", code)
    local waiter = tycho.spawn(function() return sock:receive() end)
    wait_for(function() return waiter:status() == "waiting" end, "receive to park")
    sock:close()
    local d2, _, code2 = waiter:join()
    assert.is_nil(d2)
    assert.are.equal("ECLOSED", code2)
  end)

  it("sends to the broadcast address only when broadcast is on", function()
    local rx = assert(net.udp{ host = "0.0.0.0", port = 0 })
    local off = assert(net.udp{ port = 0 })
    local sent, err, code = off:send("x", "255.255.255.255", rx.port)
    assert.is_nil(sent)
    assert.are.equal("EACCES", code)
    assert.is_string(err)
    local tx = assert(net.udp{ port = 0, broadcast = true })
    assert(tx:send("to all", "255.255.255.255", rx.port))
    assert.are.equal("to all", rx:receive(5))
    assert(off:set_broadcast(true))
    assert(off:send("now me", "255.255.255.255", rx.port))
    assert.are.equal("now me", rx:receive(5))
    off:close()
    tx:close()
    rx:close()
  end)

  it("joins a multicast group, receives from it, and leaves it", function()
    local group = "239.255.12.34"
    local rx = assert(net.udp{ host = "0.0.0.0", port = 0, reuse = true })
    assert.is_true(rx:join(group, "127.0.0.1"))
    local tx = assert(net.udp{ host = "127.0.0.1", port = 0 })
    assert(tx:set_multicast_interface("127.0.0.1"))
    assert(tx:set_multicast_loop(true))
    assert(tx:set_multicast_ttl(1))
    assert(tx:send("to the group", group, rx.port))
    local data, from = rx:receive(5)
    assert.are.equal("to the group", data)
    assert.are.equal(tx:local_address().port, from.port)
    assert.is_true(rx:leave(group, "127.0.0.1"))
    local ok, err = rx:leave(group, "127.0.0.1")
    assert.is_nil(ok) -- not a member any more
    assert.is_string(err)
    tx:close()
    rx:close()
  end)
end)
