-- Specs for the REPL server (lua/tycho/repl/server.lua), driven by a
-- client speaking the wire protocol over a real Unix socket.
local uv = tycho.uv
local server_mod = require "tycho.repl.server"
local wire = require "tycho.repl.wire"
local support = require "spec.support.net"

-- A client: messages arrive into `msgs`; until_prompt() waits for the next
-- prompt and returns the output and error text received before it.
local function connect(path)
  local c = { msgs = {}, pipe = uv.new_pipe(false), eof = false }
  local co, tok = tycho.core.token()
  c.pipe:connect(path, function(err) tycho.core.wake(co, tok, err) end)
  local err = tycho.core.park()
  if err then
    c.pipe:close()
    return nil, err
  end
  local split = wire.splitter()
  c.pipe:read_start(function(rerr, data)
    if rerr or not data then
      c.eof = true
      return
    end
    for _, m in ipairs((split(data))) do c.msgs[#c.msgs + 1] = m end
  end)
  function c.send(msg) c.pipe:write(wire.encode(msg)) end
  function c.until_prompt()
    local out, err = {}, {}
    while true do
      support.wait_for(function() return #c.msgs > 0 or c.eof end, "a message")
      local m = table.remove(c.msgs, 1)
      if not m then return nil, table.concat(out), table.concat(err) end
      if m.t == "prompt" then return m.s, table.concat(out), table.concat(err) end
      if m.t == "out" then out[#out + 1] = m.s end
      if m.t == "err" then err[#err + 1] = m.s end
    end
  end
  function c.eval(line)
    c.send({ t = "line", s = line })
    local _, out, err = c.until_prompt()
    return out, err
  end
  function c.close() if not c.pipe:is_closing() then c.pipe:close() end end
  -- Sends a completion request; returns the answer's list (other messages
  -- stay queued in c.msgs).
  function c.complete(id, word)
    c.send({ t = "complete", id = id, s = word })
    local found
    support.wait_for(function()
      for i, m in ipairs(c.msgs) do
        if m.t == "completion" then
          found = table.remove(c.msgs, i)
          return true
        end
      end
      return c.eof
    end, "a completion")
    assert.is_table(found, "no completion before the hang-up")
    assert.are.equal(id, found.id)
    return found.list
  end
  return c
end

describe("repl server", function()
  local dir, path, server
  before_each(function()
    dir = support.tmpdir("repl")
    path = dir .. "/repl.sock"
    server = assert(server_mod.listen(path))
  end)
  after_each(function()
    server:close()
    support.rmdir(dir)
  end)

  it("creates the socket with mode 0600", function()
    local st = assert(uv.fs_stat(path))
    assert.are.equal("socket", st.type)
    assert.are.equal(tonumber("600", 8), st.mode & tonumber("777", 8))
  end)

  it("evaluates lines inside the process and reads its live state", function()
    _G.repl_spec_counter = 0
    local timer = tycho.set_interval(1, function() _G.repl_spec_counter = _G.repl_spec_counter + 1 end)
    local c = assert(connect(path))
    assert.are.equal("> ", c.until_prompt())
    tycho.sleep(0.01)
    local out = c.eval("repl_spec_counter > 0, 1 + 1")
    assert.are.equal("true\t2\n", out)
    timer:stop()
    _G.repl_spec_counter = nil
    c.close()
  end)

  it("sends print output, errors and continuation prompts to the client", function()
    local c = assert(connect(path))
    c.until_prompt()
    assert.are.equal("hi\t1\n", (c.eval("print('hi', 1)")))
    local _, err = c.eval("error('bad')")
    assert.matches("^repl:1: bad\nstack traceback", err)
    c.send({ t = "line", s = "function f()" })
    assert.are.equal(">> ", (c.until_prompt()))
    c.eval("return 5")
    c.eval("end")
    assert.are.equal("5\n", (c.eval("f()")))
    c.close()
  end)

  it("gives each client its own environment and _, over the process globals", function()
    local a, b = assert(connect(path)), assert(connect(path))
    a.until_prompt()
    b.until_prompt()
    a.eval("x = 'a'")
    b.eval("x = 'b'")
    assert.are.equal('"a"\n', (a.eval("x")))
    assert.are.equal('"b"\n', (b.eval("x")))
    assert.is_nil(rawget(_G, "x"))
    a.eval("_G.repl_spec_shared = 9")
    assert.are.equal("9\n", (b.eval("repl_spec_shared")))
    _G.repl_spec_shared = nil
    assert.are.equal(2, server:clients())
    a.close()
    b.close()
  end)

  it("cancels a client's running line on interrupt, answering Tab meanwhile", function()
    local c = assert(connect(path))
    c.until_prompt()
    c.send({ t = "line", s = "tycho.sleep(100) return 'finished'" })
    tycho.sleep(0.01)
    -- Completion is answered at once, even while the line runs.
    assert.are.same({ "tycho.sleep" }, c.complete(1, "tycho.slee"))
    c.send({ t = "int" })
    local prompt, out, err = c.until_prompt()
    assert.are.equal("> ", prompt)
    assert.are.equal("", out)
    assert.are.equal("cancelled\n", err)
    c.close()
  end)

  it("clears an unfinished chunk on interrupt and prompts again", function()
    local c = assert(connect(path))
    c.until_prompt()
    c.send({ t = "line", s = "t = {" })
    assert.are.equal(">> ", (c.until_prompt()))
    c.send({ t = "int" })
    assert.are.equal("> ", (c.until_prompt()))
    c.close()
  end)

  it("keeps serving after a client detaches with .exit or by going away", function()
    local a = assert(connect(path))
    a.until_prompt()
    a.send({ t = "line", s = ".exit" })
    support.wait_for(function() return a.eof end, "the server to hang up")
    a.close()
    local b = assert(connect(path))
    b.until_prompt()
    b.send({ t = "line", s = "tycho.sleep(100)" })
    tycho.sleep(0.01)
    b.close()
    support.wait_for(function() return server:clients() == 0 end, "the detach")
    local c = assert(connect(path))
    c.until_prompt()
    assert.are.equal("3\n", (c.eval("1 + 2")))
    c.close()
  end)

  it("completes names from the session's globals over the app's", function()
    _G.repl_spec_app = { alpha = 1, alps = 2, beta = 3 }
    local c = assert(connect(path))
    c.until_prompt()
    c.eval("repl_spec_mine = { port = 1, ports = 2 }")
    assert.are.same({ "repl_spec_mine" }, c.complete(1, "repl_spec_mi"))
    assert.are.same({ "repl_spec_mine.port", "repl_spec_mine.ports" }, c.complete(2, "repl_spec_mine.po"))
    assert.are.same({ "repl_spec_app.alpha", "repl_spec_app.alps" }, c.complete(3, "repl_spec_app.al"))
    assert.are.same({ "tycho.http" }, c.complete(4, "tycho.ht"))
    assert.are.same({ "string.format" }, c.complete(5, "string.form"))
    assert.are.same({}, c.complete(6, "repl_spec_nothing"))
    -- Another session does not see this one's globals.
    local d = assert(connect(path))
    d.until_prompt()
    assert.are.same({}, d.complete(7, "repl_spec_mi"))
    assert.are.same({ "repl_spec_app" }, d.complete(8, "repl_spec_ap"))
    _G.repl_spec_app = nil
    c.close()
    d.close()
  end)

  it("completes without running __index functions of the app", function()
    local calls = 0
    _G.repl_spec_lazy = setmetatable({ real = 1 }, {
      __index = function(_, k)
        calls = calls + 1
        return { inner = k }
      end,
    })
    local c = assert(connect(path))
    c.until_prompt()
    assert.are.same({ "repl_spec_lazy.real" }, c.complete(1, "repl_spec_lazy.r"))
    assert.are.same({}, c.complete(2, "repl_spec_lazy.virtual.in"))
    assert.are.same({}, c.complete(3, "repl_spec_lazy:x"))
    assert.are.equal(0, calls)
    assert.are.equal("1\n", (c.eval("repl_spec_lazy.virtual and 1"))) -- evaluating does run it
    assert.are.equal(1, calls)
    _G.repl_spec_lazy = nil
    c.close()
  end)

  it("ignores a completion request without an id and goes on", function()
    local c = assert(connect(path))
    c.until_prompt()
    c.send({ t = "complete", s = "tycho." })
    c.send({ t = "complete", id = "1", s = "tycho." })
    assert.are.equal("2\n", (c.eval("1 + 1")))
    for _, m in ipairs(c.msgs) do assert.are_not.equal("completion", m.t) end
    assert.are.same({ "tycho.sleep" }, c.complete(3, "tycho.slee"))
    c.close()
  end)

  it("caps a long list of candidates", function()
    local big = {}
    for i = 1, server_mod.MAX_COMPLETIONS + 10 do big[("k%05d"):format(i)] = i end
    _G.repl_spec_big = big
    local c = assert(connect(path))
    c.until_prompt()
    local list = c.complete(1, "repl_spec_big.k")
    assert.are.equal(server_mod.MAX_COMPLETIONS, #list)
    assert.are.equal("repl_spec_big.k00001", list[1])
    _G.repl_spec_big = nil
    c.close()
  end)

  it("refuses a path in use by a live server", function()
    local s2, err, code = server_mod.listen(path)
    assert.is_nil(s2)
    assert.are.equal("EADDRINUSE", code)
    assert.matches("EADDRINUSE", err)
  end)

  it("replaces a socket file nobody listens on", function()
    local stale = dir .. "/stale.sock"
    local p = uv.new_pipe(false)
    assert(p:bind(stale))
    -- A bound socket that never listens refuses connections, like the
    -- file a crashed process leaves behind.
    local s2 = assert(server_mod.listen(stale))
    local c = assert(connect(stale))
    c.until_prompt()
    c.close()
    s2:close()
    p:close() -- after s2: closing a bound pipe unlinks its path
  end)

  it("returns nil, message, code for a directory that does not exist", function()
    -- libuv reports a missing directory as EACCES (as Windows does).
    local s2, err, code = server_mod.listen(dir .. "/no/such/dir.sock")
    assert.is_nil(s2)
    assert.are.equal("EACCES", code)
    assert.matches("^EACCES: ", err)
  end)

  it("closes: detaches clients and removes the socket file", function()
    local c = assert(connect(path))
    c.until_prompt()
    server:close()
    server:close()
    support.wait_for(function() return c.eof end, "the hang-up")
    assert.is_nil(uv.fs_stat(path))
    local c2, err = connect(path)
    assert.is_nil(c2)
    assert.matches("ENOENT", err)
    c.close()
  end)

  it("names the bad argument", function()
    assert.has_error(function() server_mod.listen(42) end,
      "bad argument #1 to 'listen' (string expected, got number)")
  end)
end)
