-- Specs for tycho.signal (lua/tycho/signal.lua): real signals sent to this
-- process with kill(2), handled by handlers and waits.
local tycho = require "tycho"
local support = require "spec.support.net"
local signal = tycho.signal
local pid = tycho.process.pid

-- Starts a task waiting for `name`, sends `sent` once it waits, and
-- returns what the wait returned.
local function wait_and_send(name, sent)
  local waiter = tycho.spawn(function() return signal.wait(name, 5) end)
  support.wait_for(function() return waiter:status() == "waiting" end, "the waiter")
  assert(signal.kill(pid, sent))
  return waiter:join()
end

-- Starts a handler counting deliveries of `name`, sends one, and stops it.
local function handle_one(name)
  local count = 0
  local h = signal.on(name, function() count = count + 1 end)
  assert(signal.kill(pid, name))
  support.wait_for(function() return count == 1 end, "the " .. name .. " handler")
  h:stop()
  return count
end

describe("signal", function()
  it("runs a handler for each delivery until stopped", function()
    local seen = {}
    local h = signal.on("SIGUSR1", function(name) seen[#seen + 1] = name end)
    assert(signal.kill(pid, "SIGUSR1"))
    support.wait_for(function() return #seen == 1 end, "the first delivery")
    assert(signal.kill(pid, "usr1"))
    support.wait_for(function() return #seen == 2 end, "the second delivery")
    assert.are.same({ "SIGUSR1", "SIGUSR1" }, seen)
    h:stop()
    h:stop() -- idempotent
    -- With the handler gone, a waiter is the only one to see the next one.
    assert.are.equal("SIGUSR1", wait_and_send("SIGUSR1", 10))
    assert.are.equal(2, #seen)
  end)

  it("waits for a signal, with a timeout", function()
    local got, err, code = signal.wait("SIGUSR2", 0.02)
    assert.is_nil(got)
    assert.are.equal("ETIMEDOUT", code)
    assert.matches("no SIGUSR2", err)
    assert.are.equal("SIGUSR2", wait_and_send("SIGUSR2", "SIGUSR2"))
  end)

  it("takes SIGHUP over from the host while a handler is on", function()
    assert.are.equal(1, handle_one("SIGHUP"))
    assert.are.equal("SIGHUP", wait_and_send("HUP", "SIGHUP"))
  end)

  it("handles SIGTERM and SIGINT instead of exiting while taken", function()
    assert.are.equal(1, handle_one("SIGTERM"))
    assert.are.equal(1, handle_one("SIGINT"))
  end)

  it("cancels a waiting task without leaving its handle behind", function()
    local waiter = tycho.spawn(function() return signal.wait("SIGUSR2") end)
    support.wait_for(function() return waiter:status() == "waiting" end, "the waiter")
    assert.are.equal(1, signal.open_handles())
    waiter:cancel()
    assert.are.equal("cancelled", waiter:status())
    assert.are.equal(0, signal.open_handles())
  end)

  it("drops a delivery still queued when the handler stops", function()
    -- Both handlers' tasks are queued by one delivery; whichever runs
    -- first stops the other, whose queued call must then not run.
    local calls, h1, h2 = 0, nil, nil
    h1 = signal.on("SIGUSR1", function() calls = calls + 1; h2:stop() end)
    h2 = signal.on("SIGUSR1", function() calls = calls + 1; h1:stop() end)
    signal.kill(pid, "SIGUSR1")
    support.wait_for(function() return calls > 0 end, "a handler")
    for _ = 1, 10 do coroutine.yield() end
    assert.are.equal(1, calls)
    assert.are.equal(1, signal.open_handles())
    h1:stop()
    h2:stop()
    assert.are.equal(0, signal.open_handles())
  end)

  it("knows names and numbers", function()
    assert.are.equal("SIGUSR1", signal.name("usr1"))
    assert.are.equal("SIGTERM", signal.name(15))
    assert.are.equal(9, signal.number("KILL"))
    assert.is_nil(signal.name("SIGNOPE"))
  end)

  it("names bad arguments", function()
    assert.has_error(function() signal.on("SIGNOPE", function() end) end,
      "bad argument #1 to 'on' (unknown signal 'SIGNOPE')")
    assert.has_error(function() signal.on("SIGUSR1") end,
      "bad argument #2 to 'on' (function expected, got nil)")
    assert.has_error(function() signal.wait("SIGKILL") end,
      "bad argument #1 to 'wait' (SIGKILL cannot be caught)")
    assert.has_error(function() signal.wait({}) end,
      "bad argument #1 to 'wait' (string or number expected, got table)")
  end)
end)
