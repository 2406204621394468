-- Specs for the REPL wire protocol (lua/tycho/repl/wire.lua) and the
-- blocking read behind `tycho attach`'s Tab (read_wait in
-- src/repl/line.c), over a real socket pair. The peer writes what the
-- "server" says before the blocking call starts: nothing else can run
-- while it blocks, exactly as in `tycho attach`.
local uv = tycho.uv
local wire = require "tycho.repl.wire"
local line = require "tycho.repl.line"
local support = require "spec.support.net"

-- Two connected pipes: `client` (read callback on, feeding `split` into
-- `got`) and `peer`, whose received bytes collect in `heard`.
local function pair()
  local fds = assert(uv.socketpair("stream", 0, { nonblock = true }, { nonblock = true }))
  local p = { client = uv.new_pipe(false), peer = uv.new_pipe(false), got = {}, heard = "" }
  assert(p.client:open(fds[1]))
  assert(p.peer:open(fds[2]))
  p.split = wire.splitter()
  p.client:read_start(function(err, data)
    if err or not data then
      p.got[#p.got + 1] = false
      return
    end
    local msgs, bad = p.split(data)
    for _, m in ipairs(msgs) do p.got[#p.got + 1] = m end
    if bad then p.got[#p.got + 1] = false end
  end)
  p.peer:read_start(function(_, data) if data then p.heard = p.heard .. data end end)
  -- Written at once into the socket: there when the blocking read looks.
  function p.say(text) assert(p.peer:try_write(text) == #text) end
  function p.close()
    for _, h in ipairs({ p.client, p.peer }) do
      if not h:is_closing() then h:close() end
    end
  end
  return p
end

local function is_answer_1(m) return m.t == "completion" and m.id == 1 end

describe("repl wire", function()
  local p
  before_each(function() p = pair() end)
  after_each(function() p.close() end)

  it("encodes one message per line and splits a stream cut anywhere", function()
    local text = wire.encode({ t = "out", s = "a\nb" }) .. wire.encode({ t = "prompt", s = "> " })
    assert.are.equal(2, select(2, text:gsub("\n", "")))
    local split = wire.splitter()
    local got = {}
    for i = 1, #text do
      for _, m in ipairs((split(text:sub(i, i)))) do got[#got + 1] = m end
    end
    assert.are.same({ { t = "out", s = "a\nb" }, { t = "prompt", s = "> " } }, got)
    local msgs, bad = wire.splitter()("[1]\n")
    assert.are.same({}, msgs)
    assert.are.equal("bad message", bad)
  end)

  it("ask: sends the request, returns the answer, queues the rest in order", function()
    p.say(wire.encode({ t = "out", s = "one" }) .. wire.encode({ t = "completion", id = 9, list = { "stale" } })
      .. wire.encode({ t = "err", s = "two" }) .. wire.encode({ t = "completion", id = 1, list = { "x1", "x2" } })
      .. wire.encode({ t = "out", s = "three" }))
    local queue = {}
    local answer = wire.ask(p.client, p.split, { t = "complete", id = 1, s = "x" }, is_answer_1, 5, queue)
    assert.are.same({ "x1", "x2" }, answer.list)
    assert.are.same({
      { t = "out", s = "one" },
      { t = "completion", id = 9, list = { "stale" } },
      { t = "err", s = "two" },
      { t = "out", s = "three" },
    }, queue)
    assert.are.same({}, p.got) -- nothing reached the read callback twice
    support.wait_for(function() return p.heard:find("\n", 1, true) end, "the request")
    assert.are.same({ t = "complete", id = 1, s = "x" }, (wire.splitter()(p.heard))[1])
  end)

  it("ask: times out in bounded time; a line cut by the timeout is rebuilt", function()
    p.say('{"t":"out","s":"ha')
    local queue = {}
    local t0 = uv.hrtime()
    local answer, err, code = wire.ask(p.client, p.split, { t = "complete", id = 1, s = "x" }, is_answer_1,
      0.05, queue)
    local elapsed = (uv.hrtime() - t0) / 1e9
    assert.is_nil(answer)
    assert.are.equal("ETIMEDOUT", code)
    assert.matches("^ETIMEDOUT: ", err)
    assert.is_true(elapsed >= 0.05 and elapsed < 5, "waited " .. elapsed)
    assert.are.same({}, queue)
    -- The rest arrives through the loop, into the same splitter.
    p.say('lf"}\n')
    support.wait_for(function() return #p.got > 0 end, "the rest of the line")
    assert.are.same({ { t = "out", s = "half" } }, p.got)
  end)

  it("ask: reads on across many messages and still gives up on time", function()
    -- More than one read's worth (64 KiB), none of it the answer. All of
    -- it is in the socket before ask starts; the deadline is generous so a
    -- loaded machine still reads it all before giving up (at 0.05 s, CI
    -- once saw only the first read's 64 messages).
    local noise = wire.encode({ t = "out", s = ("n"):rep(1000) })
    p.say(noise:rep(150))
    local queue = {}
    local answer, _, code = wire.ask(p.client, p.split, { t = "complete", id = 1, s = "x" }, is_answer_1, 1,
      queue)
    assert.is_nil(answer)
    assert.are.equal("ETIMEDOUT", code)
    assert.are.equal(150, #queue)
    assert.are.same({ t = "out", s = ("n"):rep(1000) }, queue[150])
  end)

  it("ask: stops on the deadline while a peer sends without end", function()
    -- A real child process floods the socket with messages, none the answer.
    local exited = false
    local child = assert(uv.spawn("sh", {
      args = { "-c", 'while :; do echo \'{"t":"out","s":"flood"}\'; done' },
      stdio = { nil, p.peer:fileno(), nil },
    }, function() exited = true end))
    p.peer:read_stop()
    support.wait_for(function() return p.got[1] ~= nil end, "the flood")
    local queue = {}
    local t0 = uv.hrtime()
    local answer, _, code = wire.ask(p.client, p.split, { t = "complete", id = 1, s = "x" }, is_answer_1, 0.1,
      queue)
    local elapsed = (uv.hrtime() - t0) / 1e9
    child:kill("sigkill")
    support.wait_for(function() return exited end, "the child's exit")
    child:close()
    assert.is_nil(answer)
    assert.are.equal("ETIMEDOUT", code)
    assert.is_true(elapsed >= 0.1 and elapsed < 5, "waited " .. elapsed)
    assert.is_true(#queue > 0)
    assert.are.same({ t = "out", s = "flood" }, queue[#queue])
  end)

  it("ask: the end of the stream and garbage are queued as false", function()
    p.client:read_stop() -- the loop runs below: keep what comes for ask
    p.say(wire.encode({ t = "out", s = "last words" }))
    local done = false
    p.peer:shutdown(function() done = true end) -- half-closed: still hears
    support.wait_for(function() return done end, "the shutdown")
    local queue = {}
    local answer, err, code = wire.ask(p.client, p.split, { t = "complete", id = 1, s = "x" }, is_answer_1, 5,
      queue)
    assert.is_nil(answer)
    assert.are.equal("EOF", code)
    assert.are.equal("EOF: end of file", err)
    assert.are.same({ { t = "out", s = "last words" }, false }, queue)

    local q = pair()
    q.say(wire.encode({ t = "completion", id = 1, list = {} }) .. "not json\n")
    queue = {}
    local a2 = wire.ask(q.client, q.split, { t = "complete", id = 1, s = "x" }, is_answer_1, 5, queue)
    assert.are.same({}, a2.list)
    assert.are.same({ false }, queue)
    local q2 = pair()
    q2.say("garbage\n")
    local a3, _, code3 = wire.ask(q2.client, q2.split, { t = "complete", id = 1, s = "x" }, is_answer_1, 5, {})
    assert.is_nil(a3)
    assert.are.equal("EPROTO", code3)
    q.close()
    q2.close()
  end)

  it("ask: fails at once on a pipe that cannot send", function()
    local c = uv.new_pipe(false) -- never connected
    local answer, _, code = wire.ask(c, p.split, { t = "complete", id = 1, s = "x" }, is_answer_1, 5, {})
    assert.is_nil(answer)
    assert.is_string(code)
    c:close()
  end)

  it("ask names its bad arguments", function()
    assert.has_error(function() wire.ask(nil, p.split, {}, is_answer_1, 1, {}) end,
      "bad argument #1 to 'ask' (userdata expected, got nil)")
    assert.has_error(function() wire.ask(p.client, nil, {}, is_answer_1, 1, {}) end,
      "bad argument #2 to 'ask' (function expected, got nil)")
    assert.has_error(function() wire.ask(p.client, p.split, {}, is_answer_1, "1", {}) end,
      "bad argument #5 to 'ask' (number expected, got string)")
    assert.has_error(function() wire.ask(p.client, p.split, {}, is_answer_1, 1) end,
      "bad argument #6 to 'ask' (table expected, got nil)")
  end)
end)

describe("repl line read_wait", function()
  local p
  before_each(function() p = pair() end)
  after_each(function() p.close() end)

  it("reads what is there, times out on silence, returns '' at the end", function()
    p.client:read_stop()
    local fd = p.client:fileno()
    p.say("abc")
    assert.are.equal("abc", line.read_wait(fd, 5))
    local t0 = uv.hrtime()
    local data, err, code = line.read_wait(fd, 0.02)
    assert.is_nil(data)
    assert.are.equal("ETIMEDOUT", code)
    assert.matches("^ETIMEDOUT: ", err)
    assert.is_true(uv.hrtime() - t0 >= 0.02 * 1e9)
    assert.are.equal("ETIMEDOUT", select(3, line.read_wait(fd, 0)))
    p.peer:close()
    assert.are.equal("", line.read_wait(fd, 5))
  end)

  it("names its bad arguments", function()
    assert.has_error(function() line.read_wait(nil, 1) end,
      "bad argument #1 to 'read_wait' (number expected, got nil)")
    assert.has_error(function() line.read_wait(-1, 1) end,
      "bad argument #1 to 'read_wait' (not a file descriptor)")
    assert.has_error(function() line.read_wait(0, -1) end,
      "bad argument #2 to 'read_wait' (out of range)")
    assert.has_error(function() line.read_wait(0) end,
      "bad argument #2 to 'read_wait' (number expected, got no value)")
  end)
end)
