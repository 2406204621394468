-- Specs for the scheduler (src/core/task.c) through tycho.spawn and friends.
local tycho = require "tycho"

describe("tasks", function()
  it("run a spawned function and join its results", function()
    local h = tycho.spawn(function(a, b)
      tycho.sleep(0.001)
      return a + b, "done"
    end, 40, 2)
    local sum, word = h:join()
    assert.are.equal(42, sum)
    assert.are.equal("done", word)
    assert.are.equal("done", h:status())
  end)

  it("raise the task's error in the joiner", function()
    local h = tycho.spawn(function() error("boom", 0) end)
    local ok, err = pcall(h.join, h)
    assert.is_false(ok)
    assert.matches("^boom", err)
    assert.are.equal("failed", h:status())
  end)

  it("cancel a sleeping task so that it never resumes", function()
    local resumed = false
    local h = tycho.spawn(function()
      tycho.sleep(5)
      resumed = true
    end)
    coroutine.yield() -- it starts and parks
    assert.are.equal("waiting", h:status())
    h:cancel()
    assert.are.equal("cancelled", h:status())
    tycho.sleep(0.01)
    assert.is_false(resumed)
    assert.has_error(function() h:join() end, "task was cancelled")
  end)

  it("run 100 sleepers concurrently", function()
    local t0 = tycho.hrtime()
    local hs = {}
    for i = 1, 100 do hs[i] = tycho.spawn(function() tycho.sleep(0.05) return i end) end
    for i = 1, 100 do assert.are.equal(i, hs[i]:join()) end
    local ms = (tycho.hrtime() - t0) / 1e6
    assert.is_true(ms < 1000, "100 sleeps of 50 ms took " .. ms .. " ms")
  end)

  it("refuse to await outside a task", function()
    local co = coroutine.create(function() tycho.sleep(0.001) end)
    local ok, err = coroutine.resume(co)
    assert.is_false(ok)
    assert.matches("must be called inside a task", err)
  end)

  it("pass arguments and report their status through their life", function()
    local h
    h = tycho.spawn(function(...)
      local inside = h:status()
      tycho.sleep(0.001)
      return inside, select("#", ...), ...
    end, "a", nil, "c")
    assert.are.equal("ready", h:status())
    assert.matches("^task<.*ready>$", tostring(h))
    coroutine.yield() -- a bare yield gives queued tasks their turn first
    assert.are.equal("waiting", h:status())
    local inside, n, a, b, c = h:join()
    assert.are.equal("running", inside)
    assert.are.same({ 3, "a", nil, "c" }, { n, a, b, c })
    assert.are.equal("done", h:status())
    assert.are.equal(3, select("#", select(3, h:join()))) -- join again: same results
  end)

  it("let several tasks join the same task", function()
    local target = tycho.spawn(function() tycho.sleep(0.005) return "shared" end)
    local a = tycho.spawn(function() return target:join() end)
    local b = tycho.spawn(function() return target:join() end)
    assert.are.equal("shared", a:join())
    assert.are.equal("shared", b:join())
  end)

  it("refuse to join themselves", function()
    local h
    h = tycho.spawn(function() return pcall(h.join, h) end)
    local ok, err = h:join()
    assert.is_false(ok)
    assert.matches("a task cannot join itself", err)
  end)

  it("cancel a task that has not started: it never runs", function()
    local ran = false
    local h = tycho.spawn(function() ran = true end)
    h:cancel()
    assert.are.equal("cancelled", h:status())
    coroutine.yield() -- it would have started on this turn
    assert.is_false(ran)
    assert.has_error(function() h:join() end, "task was cancelled")
    h:cancel() -- cancelling again, or a finished task, does nothing
    assert.are.equal("cancelled", h:status())
  end)

  it("cancel a task that cancels itself at its next wait", function()
    local h, after = nil, false
    h = tycho.spawn(function()
      h:cancel()
      tycho.sleep(0)
      after = true
    end)
    assert.has_error(function() h:join() end, "task was cancelled")
    assert.is_false(after)
  end)

  it("keep a cancelled task from waiting again even if it catches the error", function()
    local first, second
    local h = tycho.spawn(function()
      first = { pcall(tycho.sleep, 5) }
      second = { pcall(tycho.sleep, 0) }
      return "cleaned up"
    end)
    coroutine.yield() -- it starts and parks
    h:cancel()
    assert.are.same({ false, "cancelled" }, first)
    assert.are.same({ false, "cancelled" }, second)
    assert.are.equal("cleaned up", h:join())
  end)

  it("cancel a task parked by a bare coroutine.yield(): it never resumes", function()
    local resumed, closed = false, false
    local h = tycho.spawn(function()
      local _ <close> = setmetatable({}, { __close = function() closed = true end })
      coroutine.yield()
      resumed = true
    end)
    coroutine.yield() -- h starts, yields, and waits for its next turn
    assert.are.equal("waiting", h:status())
    h:cancel()
    assert.are.equal("cancelled", h:status())
    assert.is_true(closed)
    coroutine.yield()
    coroutine.yield()
    assert.is_false(resumed)
    assert.has_error(function() h:join() end, "task was cancelled")
  end)

  it("cancel a task waiting in join without touching the joined task", function()
    local slow = tycho.spawn(function() tycho.sleep(0.02) return "slow" end)
    local joiner = tycho.spawn(function() return slow:join() end)
    coroutine.yield() -- it starts and parks
    assert.are.equal("waiting", joiner:status())
    joiner:cancel()
    assert.are.equal("cancelled", joiner:status())
    assert.are.equal("waiting", slow:status())
    assert.are.equal("slow", slow:join())
  end)

  it("run <close> variables of a cancelled task", function()
    local closed = false
    local h = tycho.spawn(function()
      local _ <close> = setmetatable({}, { __close = function() closed = true end })
      tycho.sleep(5)
    end)
    coroutine.yield() -- it starts and parks
    h:cancel()
    assert.is_true(closed)
  end)

  it("isolate errors: one task failing does not stop the others", function()
    local done = {}
    local good = {}
    for i = 1, 5 do
      good[i] = tycho.spawn(function()
        tycho.sleep(0.005)
        done[#done + 1] = i
        return i
      end)
    end
    local bad = tycho.spawn(function()
      tycho.sleep(0.001)
      local t = nil
      return t.field
    end)
    local ok, err = pcall(bad.join, bad)
    assert.is_false(ok)
    assert.matches("task_spec.lua:%d+: attempt to index a nil value", err)
    assert.matches("stack traceback:", err)
    for i = 1, 5 do assert.are.equal(i, good[i]:join()) end
    assert.are.equal(5, #done)
  end)

  it("keep error objects that are not strings", function()
    local obj = { code = 7 }
    local h = tycho.spawn(function() error(obj) end)
    local ok, err = pcall(h.join, h)
    assert.is_false(ok)
    assert.are.equal(obj, err)
  end)

  it("refuse to join from outside a task while the task runs", function()
    local h = tycho.spawn(function() tycho.sleep(0.001) end)
    local ok, err = coroutine.wrap(function() return pcall(h.join, h) end)()
    assert.is_false(ok)
    assert.matches("join must be called inside a task", err)
    h:join()
  end)

  it("refuse to wait where Lua cannot yield, and wait where it can", function()
    local ok, err = pcall(table.sort, { 3, 1, 2 }, function(a, b)
      tycho.sleep(0)
      return a < b
    end)
    assert.is_false(ok)
    assert.matches("cannot wait here", err)
    -- pcall and metamethods called from Lua are fine
    local lazy = setmetatable({}, { __index = function(_, k)
      tycho.sleep(0.001)
      return k .. "!"
    end })
    assert.are.equal("x!", lazy.x)
    assert.is_true((pcall(tycho.sleep, 0.001)))
  end)

  it("name the bad argument", function()
    assert.has_error(function() tycho.sleep("x") end,
      "bad argument #1 to 'sleep' (number expected, got string)")
    assert.has_error(function() tycho.spawn(42) end,
      "bad argument #1 to 'spawn' (function expected, got number)")
  end)
end)
