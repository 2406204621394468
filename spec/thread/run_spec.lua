-- Specs for tycho.thread.run (src/thread/pool.c, src/thread/copy.c,
-- lua/tycho/thread.lua): results, errors, copying, modules, concurrency,
-- cancellation, and the loop serving while threads compute.
local tycho = require "tycho"
local thread = tycho.thread
local fs = tycho.fs
local net = require "spec.support.net"

-- In a thread: waits (bounded by a wall-clock deadline) until `path` exists.
-- No upvalues: it is copied to the thread as bytecode.
local function wait_for_file(path, seconds)
  local deadline = os.time() + seconds
  while os.time() <= deadline do
    local f = io.open(path, "r")
    if f then
      f:close()
      return true
    end
  end
  return false
end

local function tmpdir()
  return net.tmpdir("thread")
end

describe("tycho.thread.run", function()
  it("returns every result of the function, integers and floats apart", function()
    local a, b, c, d, e = thread.run(function(x, y)
      return x + y, x / y, nil, "s", math.type(x)
    end, 6, 3)
    assert.are.equal(9, a)
    assert.are.equal("integer", math.type(a))
    assert.are.equal(2.0, b)
    assert.are.equal("float", math.type(b))
    assert.is_nil(c)
    assert.are.equal("s", d)
    assert.are.equal("integer", e)
    assert.are.equal(0, select("#", thread.run(function() end)))
  end)

  it("copies nested tables in and out, not sharing them", function()
    local input = { list = { 1, 2, { 3 } }, name = "x", [true] = false, [2.5] = "f" }
    local out = thread.run(function(t)
      t.list[3][1] = 30
      t.added = { deep = { deeper = "yes" } }
      return t
    end, input)
    assert.are.equal(3, input.list[3][1]) -- the caller's table is untouched
    assert.are.same({ 1, 2, { 30 } }, out.list)
    assert.are.equal("yes", out.added.deep.deeper)
    assert.is_false(out[true])
    assert.are.equal("f", out[2.5])
  end)

  it("keeps cycles and shared subtables", function()
    local shared = { n = 1 }
    local t = { a = shared, b = shared }
    t.self = t
    local same_in, out = thread.run(function(x)
      return x.a == x.b and x.self == x, x
    end, t)
    assert.is_true(same_in)
    assert.are.equal(out, out.self)
    assert.are.equal(out.a, out.b)
    assert.are_not.equal(shared, out.a)
  end)

  it("refuses tables nested too deeply", function()
    local t = {}
    local cur = t
    for _ = 1, 150 do
      cur.next = {}
      cur = cur.next
    end
    local ok, err = pcall(thread.run, function() end, t)
    assert.is_false(ok)
    assert.matches("bad argument #2 to 'run' %(tables nested more than 100", err)
  end)

  it("raises the thread's error with the thread's traceback", function()
    local function failing_in_thread(n)
      if n > 0 then error("bad input " .. n) end
    end
    local ok, err = pcall(thread.run, failing_in_thread, 7)
    assert.is_false(ok)
    assert.matches("run_spec%.lua:%d+: bad input 7", err)
    assert.matches("thread stack traceback:", err, 1, true)
    assert.matches("run_spec%.lua:%d+: in function <[^>]*run_spec%.lua:%d+>", err)
  end)

  it("turns a non-string error into a message", function()
    local ok, err = pcall(thread.run, function() error({ code = 1 }) end)
    assert.is_false(ok)
    assert.matches("(error object is a table value)", err, 1, true)
  end)

  it("refuses a function with upvalues, naming the argument and upvalue", function()
    local counter = 0
    local ok, err = pcall(thread.run, function() return counter end)
    assert.is_false(ok)
    assert.matches("bad argument #1 to 'run' (cannot copy a function with upvalue 'counter'", err, 1, true)
    ok, err = pcall(thread.run, function() end, 1, { fn = { function() return counter end } })
    assert.is_false(ok)
    assert.matches("bad argument #3 to 'run' (cannot copy a function with upvalue 'counter'", err, 1, true)
    assert.matches("in field 'fn[1]'", err, 1, true)
  end)

  it("refuses userdata, threads and C functions, naming where they are", function()
    local ok, err = pcall(function()
      local r = thread.run(function() end, { out = io.stdout })
      return r
    end)
    assert.is_false(ok)
    assert.matches("run_spec.lua:%d+: bad argument #2 to 'run' %(cannot copy a userdata value in field 'out'%)", err)
    ok, err = pcall(thread.run, function() end, coroutine.create(print))
    assert.is_false(ok)
    assert.matches("bad argument #2 to 'run' (cannot copy a thread value)", err, 1, true)
    ok, err = pcall(thread.run, print)
    assert.is_false(ok)
    assert.matches("bad argument #1 to 'run' (cannot copy a C function)", err, 1, true)
    ok, err = pcall(thread.run, 42)
    assert.is_false(ok)
    assert.matches("bad argument #1 to 'run' (function or string expected, got number)", err, 1, true)
  end)

  it("refuses results that cannot be copied back", function()
    local ok, err = pcall(thread.run, function() return 1, io.stderr end)
    assert.is_false(ok)
    assert.matches("cannot copy result #2 back from the thread: cannot copy a userdata value", err, 1, true)
  end)

  it("copies functions without upvalues both ways", function()
    local double, seven = thread.run(function(f, x)
      return function(z) return z * 2 end, f(f(x))
    end, function(v) return v + 1 end, 5)
    assert.are.equal(7, seven)
    assert.are.equal(42, double(21))
  end)

  it("has the standard libraries and cjson, but not tycho", function()
    local enc, sum = thread.run(function(t)
      local cjson = require "cjson"
      return cjson.encode(t), string.format("%d", #t) .. table.concat(t, ",")
    end, { 1, 2, 3 })
    assert.are.equal("[1,2,3]", enc)
    assert.are.equal("31,2,3", sum)
    local ok, err = pcall(thread.run, function() return _ENV.tycho.now() end)
    assert.is_false(ok)
    assert.matches("tycho.now is not available inside tycho.thread.run", err, 1, true)
    ok, err = pcall(thread.run, function() return require("tycho.fs") end)
    assert.is_false(ok)
    assert.matches("module 'tycho.fs' is not available inside tycho.thread.run", err, 1, true)
    ok, err = pcall(thread.run, function() os.exit(3) end)
    assert.is_false(ok)
    assert.matches("os.exit is not available inside tycho.thread.run", err, 1, true)
  end)

  describe("with a module name", function()
    local dir, saved_path

    before_each(function()
      dir = tmpdir()
      saved_path = package.path
      package.path = dir .. "/?.lua;" .. package.path
      assert(fs.write_file(dir .. "/thr_mathy.lua",
        "local M = {}\nfunction M.square(x) return x * x end\n"
          .. "function M.fail() error('mathy failed') end\nM.value = 1\nreturn M\n"))
      assert(fs.write_file(dir .. "/thr_fnmod.lua",
        "return function(a, b) return a .. b, _VERSION end\n"))
    end)

    after_each(function()
      package.path = saved_path
      net.rmdir(dir)
    end)

    it("calls mod.fn, a function field of a module on package.path", function()
      assert.are.equal(144, thread.run("thr_mathy.square", 12))
    end)

    it("calls a module that returns a function", function()
      local s, v = thread.run("thr_fnmod", "ab", "cd")
      assert.are.equal("abcd", s)
      assert.are.equal(_VERSION, v)
    end)

    it("calls a function of the standard library", function()
      assert.are.equal("xyxyxy", thread.run("string.rep", "xy", 3))
    end)

    it("reports a missing function, a non-function and a missing module", function()
      local ok, err = pcall(thread.run, "thr_mathy.nope")
      assert.is_false(ok)
      assert.matches("module 'thr_mathy' has no function 'nope'", err, 1, true)
      ok, err = pcall(thread.run, "thr_mathy")
      assert.is_false(ok)
      assert.matches("module 'thr_mathy' returned a table, not a function", err, 1, true)
      ok, err = pcall(thread.run, "thr_no_such_module.fn")
      assert.is_false(ok)
      assert.matches("module 'thr_no_such_module' not found", err, 1, true)
      ok, err = pcall(thread.run, "thr_mathy.fail")
      assert.is_false(ok)
      assert.matches("thr_mathy.lua:3: mathy failed", err, 1, true)
      assert.matches("thread stack traceback:", err, 1, true)
    end)
  end)

  it("must be called inside a task", function()
    local co = coroutine.wrap(function() return thread.run(function() end) end)
    local ok, err = pcall(co)
    assert.is_false(ok)
    assert.matches("run must be called inside a task", err, 1, true)
  end)

  it("runs pool_size() threads at the same time", function()
    local n = thread.pool_size()
    assert.is_true(n >= 4)
    local dir = tmpdir()
    -- Each job leaves a mark and waits for all four: only jobs running at
    -- the same time can all see four marks before their deadline.
    local function barrier(d, i, total, seconds)
      local f = assert(io.open(d .. "/mark" .. i, "w"))
      f:close()
      local deadline = os.time() + seconds
      while os.time() <= deadline do
        local seen = 0
        for k = 1, total do
          local m = io.open(d .. "/mark" .. k, "r")
          if m then
            seen = seen + 1
            m:close()
          end
        end
        if seen == total then return true end
      end
      return false
    end
    local handles = {}
    for i = 1, 4 do
      handles[i] = tycho.spawn(thread.run, barrier, dir, i, 4, 20)
    end
    for i = 1, 4 do assert.is_true(handles[i]:join()) end
    net.rmdir(dir)
  end)

  it("finishes four blocking jobs in about the time of one", function()
    -- Each job blocks its thread for 0.4 s without using a core (a child
    -- `sleep`), so the pool's four threads overlap even on a 2-core box.
    local function block(seconds)
      return os.execute("sleep " .. seconds)
    end
    local t0 = tycho.hrtime()
    assert.is_true(thread.run(block, 0.4))
    local one = (tycho.hrtime() - t0) / 1e9
    local handles = {}
    t0 = tycho.hrtime()
    for i = 1, 4 do handles[i] = tycho.spawn(thread.run, block, 0.4) end
    for i = 1, 4 do assert.is_true(handles[i]:join()) end
    local four = (tycho.hrtime() - t0) / 1e9
    assert.is_true(four < one * 2, ("4 jobs took %.2f s, one %.2f s"):format(four, one))
  end)

  it("keeps the loop serving timers while a thread computes", function()
    local dir = tmpdir()
    local marker = dir .. "/go"
    local job = tycho.spawn(thread.run, wait_for_file, marker, 20)
    local ticks = 0
    local timer
    timer = tycho.set_interval(5, function()
      ticks = ticks + 1
      if ticks == 5 then
        timer:stop()
        assert(fs.write_file(marker, "x"))
      end
    end)
    assert.is_true(job:join()) -- it saw the file the fifth tick wrote
    assert.are.equal(5, ticks)
    net.rmdir(dir)
  end)

  it("keeps an HTTP server answering while a thread computes", function()
    local dir = tmpdir()
    local marker = dir .. "/go"
    local server = assert(tycho.http.serve {
      port = 0,
      handler = function(req, res) res:send("pong " .. req.path) end,
    })
    local job = tycho.spawn(thread.run, wait_for_file, marker, 20)
    local resp = assert(tycho.http.get(("http://127.0.0.1:%d/ping"):format(server.port)))
    assert.are.equal(200, resp.status)
    assert.are.equal("pong /ping", resp.body)
    assert.are.equal("waiting", job:status()) -- the thread still runs
    assert(fs.write_file(marker, "x"))
    assert.is_true(job:join())
    server:close()
    server:wait_closed()
    net.rmdir(dir)
  end)

  it("drops the result of a cancelled caller, never resuming it", function()
    local dir = tmpdir()
    local marker = dir .. "/go"
    local resumed = false
    local h = tycho.spawn(function()
      thread.run(wait_for_file, marker, 20)
      resumed = true
    end)
    coroutine.yield() -- it starts and parks on the thread
    assert.are.equal(1, thread.stats().running)
    h:cancel()
    assert.are.equal("cancelled", h:status())
    assert(fs.write_file(marker, "x"))
    net.wait_for(function() return thread.stats().running == 0 end, "the thread to finish")
    tycho.sleep(0.01)
    assert.is_false(resumed)
    net.rmdir(dir)
  end)

  it("reuses worker states between jobs", function()
    local function count()
      _G.thread_spec_runs = (_G.thread_spec_runs or 0) + 1
      return _G.thread_spec_runs
    end
    local first = thread.run(count)
    local second = thread.run(count)
    assert.are.equal(first + 1, second)
    assert.is_true(thread.stats().idle_states >= 1)
  end)

  it("starts over with fresh worker states after reset()", function()
    local function count()
      _G.thread_spec_resets = (_G.thread_spec_resets or 0) + 1
      return _G.thread_spec_resets
    end
    thread.run(count)
    assert.are.equal(2, thread.run(count))
    thread.reset()
    assert.are.equal(0, thread.stats().idle_states)
    assert.are.equal(1, thread.run(count))
  end)

  it("closes a state that was running during reset() when its job ends", function()
    local dir = tmpdir()
    local marker = dir .. "/go"
    local function mark_and_wait(wait, path, seconds)
      _G.thread_spec_old = true
      return wait(path, seconds)
    end
    thread.reset()
    local job = tycho.spawn(thread.run, mark_and_wait, wait_for_file, marker, 20)
    coroutine.yield() -- it starts and parks on the thread
    thread.reset()
    assert(fs.write_file(marker, "x"))
    assert.is_true(job:join())
    assert.are.equal(0, thread.stats().idle_states)
    assert.is_nil(thread.run(function() return _G.thread_spec_old end))
    net.rmdir(dir)
  end)
end)
