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
    tycho.sleep(0.005)
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

  it("name the bad argument", function()
    assert.has_error(function() tycho.sleep("x") end,
      "bad argument #1 to 'sleep' (number expected, got string)")
    assert.has_error(function() tycho.spawn(42) end,
      "bad argument #1 to 'spawn' (function expected, got number)")
  end)
end)
