-- Specs for the time functions of module `tycho` (lua/tycho/init.lua):
-- sleep, now, hrtime, set_timeout, set_interval and their timers.
local tycho = require "tycho"

local function ms_since(t0) return (tycho.hrtime() - t0) / 1e6 end

-- Waits (bounded) until pred() is true, giving the loop a turn each time.
local function wait_for(pred, what)
  for _ = 1, 2000 do
    if pred() then return end
    tycho.sleep(0.001)
  end
  error("timed out waiting for " .. what, 2)
end

describe("tycho.sleep", function()
  it("suspends the task for at least the given time", function()
    local t0 = tycho.hrtime()
    tycho.sleep(0.03)
    local ms = ms_since(t0)
    assert.is_true(ms >= 30, "slept only " .. ms .. " ms")
    assert.is_true(ms < 1000, "slept " .. ms .. " ms")
  end)

  it("never returns early, even by less than a millisecond", function()
    for _ = 1, 50 do
      local t0 = tycho.hrtime()
      tycho.sleep(0.0015)
      local ns = tycho.hrtime() - t0
      assert.is_true(ns >= 1500000, "slept only " .. ns .. " ns")
    end
  end)

  it("accepts zero and fractions", function()
    tycho.sleep(0)
    tycho.sleep(0.0001)
  end)

  it("lets other tasks run while it waits", function()
    local ran = false
    tycho.spawn(function() ran = true end)
    assert.is_false(ran)
    tycho.sleep(0.001)
    assert.is_true(ran)
  end)

  it("names its bad argument", function()
    assert.has_error(function() tycho.sleep() end,
      "bad argument #1 to 'sleep' (number expected, got nil)")
    assert.has_error(function() tycho.sleep("1") end,
      "bad argument #1 to 'sleep' (number expected, got string)")
    assert.has_error(function() tycho.sleep(-1) end,
      "bad argument #1 to 'sleep' (non-negative number expected)")
    assert.has_error(function() tycho.sleep(0 / 0) end,
      "bad argument #1 to 'sleep' (non-negative number expected)")
  end)

  it("raises a clear error outside a task", function()
    local ok, err = coroutine.wrap(function() return pcall(tycho.sleep, 0) end)()
    assert.is_false(ok)
    assert.matches("must be called inside a task", err)
  end)

  it("raises a clear error from a raw luv callback", function()
    local result
    local timer = tycho.uv.new_timer()
    timer:start(0, 0, function()
      timer:close()
      result = { pcall(tycho.sleep, 0) }
    end)
    wait_for(function() return result end, "the luv callback")
    assert.is_false(result[1])
    assert.matches("must be called inside a task", result[2])
  end)
end)

describe("tycho.now", function()
  it("is the loop time in integer milliseconds and follows sleeps", function()
    local a = tycho.now()
    assert.are.equal("integer", math.type(a))
    tycho.sleep(0.02)
    local b = tycho.now()
    assert.is_true(b - a >= 19, "now advanced " .. (b - a) .. " ms")
    assert.is_true(b - a < 1000)
  end)
end)

describe("tycho.hrtime", function()
  it("is a monotonic integer clock in nanoseconds", function()
    local a = tycho.hrtime()
    assert.are.equal("integer", math.type(a))
    tycho.sleep(0.01)
    local b = tycho.hrtime()
    assert.are.equal("integer", math.type(b))
    assert.is_true(b - a >= 9e6, "hrtime advanced " .. (b - a) .. " ns")
    assert.is_true(b - a < 1e9)
    assert.is_true(tycho.hrtime() >= b)
  end)
end)

describe("tycho.set_timeout", function()
  it("runs the function once, as a task, after the delay", function()
    local t0 = tycho.hrtime()
    local calls, elapsed, arg = 0, nil, nil
    local timer
    timer = tycho.set_timeout(20, function(t)
      calls = calls + 1
      arg = t
      tycho.sleep(0.001) -- it runs in a task, so it may await
      elapsed = ms_since(t0)
    end)
    wait_for(function() return elapsed end, "the timeout")
    assert.is_true(elapsed >= 19, "fired after " .. elapsed .. " ms")
    assert.are.equal(timer, arg)
    tycho.sleep(0.03)
    assert.are.equal(1, calls)
    assert.is_false(timer:is_active())
    timer:stop() -- harmless after it fired
  end)

  it("never runs the function when stopped first", function()
    local ran = false
    local timer = tycho.set_timeout(5, function() ran = true end)
    assert.is_true(timer:is_active())
    timer:stop()
    assert.is_false(timer:is_active())
    local later = false
    tycho.set_timeout(20, function() later = true end)
    wait_for(function() return later end, "a later timeout")
    assert.is_false(ran)
  end)

  it("names its bad arguments", function()
    assert.has_error(function() tycho.set_timeout(nil, print) end,
      "bad argument #1 to 'set_timeout' (number expected, got nil)")
    assert.has_error(function() tycho.set_timeout(10) end,
      "bad argument #2 to 'set_timeout' (function expected, got nil)")
    assert.has_error(function() tycho.set_timeout(-5, print) end,
      "bad argument #1 to 'set_timeout' (non-negative number expected)")
  end)
end)

describe("tycho.set_interval", function()
  it("runs the function repeatedly until stopped", function()
    local ticks = 0
    local timer = tycho.set_interval(2, function() ticks = ticks + 1 end)
    wait_for(function() return ticks >= 3 end, "three ticks")
    assert.is_true(timer:is_active())
    timer:stop()
    local seen = ticks
    tycho.sleep(0.02)
    assert.are.equal(seen, ticks)
    assert.is_false(timer:is_active())
  end)

  it("can be stopped from its own function", function()
    local ticks = 0
    tycho.set_interval(1, function(t)
      ticks = ticks + 1
      if ticks == 2 then t:stop() end
    end)
    wait_for(function() return ticks >= 2 end, "two ticks")
    tycho.sleep(0.02)
    assert.are.equal(2, ticks)
  end)

  it("runs no tick after stop, even one that fired in the same turn", function()
    local uv = tycho.uv
    local ticks, after_stop = 0, nil
    local timer = tycho.set_interval(1, function(t)
      ticks = ticks + 1
      t:stop()
      tycho.sleep(0.001) -- stopping its own timer does not cancel this tick
      after_stop = ticks
    end)
    -- A raw timer due with the first tick runs right after it, in the same
    -- pass over the timers; moving the loop's clock on there makes the
    -- interval due again at once, so a second tick is queued before the
    -- first one's task has run.
    local raw = uv.new_timer()
    raw:start(1, 0, function()
      local deadline = tycho.hrtime() + 3e6
      while tycho.hrtime() < deadline do end
      uv.update_time()
      raw:close()
    end)
    wait_for(function() return after_stop end, "the first tick")
    tycho.sleep(0.01)
    assert.are.equal(1, ticks)
    assert.is_false(timer:is_active())
  end)

  it("names its bad arguments", function()
    assert.has_error(function() tycho.set_interval("10", print) end,
      "bad argument #1 to 'set_interval' (number expected, got string)")
    assert.has_error(function() tycho.set_interval(10, {}) end,
      "bad argument #2 to 'set_interval' (function expected, got table)")
  end)
end)
