-- Specs for the loop watchdog (src/thread/watchdog.c) through
-- tycho.thread.watchdog and tycho.thread.watchdog_status.
local tycho = require "tycho"
local thread = tycho.thread

-- Keeps the loop busy for `ms` of wall-clock time.
local function spin_here(ms)
  local stop = tycho.hrtime() + ms * 1000000
  local n = 0
  while tycho.hrtime() < stop do n = n + 1 end
  return n
end

describe("the loop watchdog", function()
  after_each(function()
    assert.is_true(thread.watchdog { ms = 0 })
    assert.are.equal(0, thread.watchdog_status().ms)
  end)

  it("reports a task blocking the loop with its traceback, once", function()
    assert.is_true(thread.watchdog { ms = 100 })
    assert.are.equal(100, thread.watchdog_status().ms)
    local before = thread.watchdog_status().reports
    local h = tycho.spawn(function()
      local n = spin_here(500) -- not a tail call: keep this frame
      return n
    end)
    assert.is_true(h:join() > 0)
    -- At least this episode (a busy machine may stall the loop elsewhere
    -- too; the e2e tests check that one episode is reported once).
    local st = thread.watchdog_status()
    assert.is_true(st.reports >= before + 1)
    assert.matches("the event loop has been blocked for %d+ ms by task 'spec/thread/watchdog_spec.lua:%d+'", st.last)
    assert.matches("watchdog_spec.lua:%d+: in upvalue 'spin_here'", st.last)
  end)

  it("names the method and path of a blocking HTTP handler", function()
    assert.is_true(thread.watchdog { ms = 100 })
    local before = thread.watchdog_status().reports
    local server = assert(tycho.http.serve {
      port = 0,
      handler = function(req, res)
        spin_here(500)
        res:send("done")
      end,
    })
    local resp = assert(tycho.http.get(("http://127.0.0.1:%d/slow/path"):format(server.port)))
    assert.are.equal("done", resp.body)
    server:close()
    server:wait_closed()
    -- At least this episode (a busy machine may stall the loop elsewhere
    -- too; the e2e tests check that one episode is reported once).
    local st = thread.watchdog_status()
    assert.is_true(st.reports >= before + 1)
    assert.matches("by task 'http handler' (GET /slow/path)", st.last, 1, true)
    assert.matches("watchdog_spec.lua:%d+: in function <[^>]*watchdog_spec.lua:%d+>", st.last)
  end)

  it("puts back a debug hook that was there before its own", function()
    assert.is_true(thread.watchdog { ms = 100 })
    local before = thread.watchdog_status().reports
    local h = tycho.spawn(function()
      local calls = 0
      local function count() calls = calls + 1 end
      debug.sethook(count, "", 100)
      spin_here(500)
      local seen = calls
      spin_here(20)
      local after = calls
      local kept = debug.gethook() == count
      debug.sethook() -- task coroutines are reused
      return seen, after, kept
    end)
    local seen, after, kept = h:join()
    assert.is_true(thread.watchdog_status().reports >= before + 1)
    assert.is_true(seen > 0)
    assert.is_true(after > seen)
    assert.is_true(kept)
  end)

  it("stays quiet while the loop only waits", function()
    assert.is_true(thread.watchdog { ms = 300 })
    local before = thread.watchdog_status().reports
    for _ = 1, 10 do tycho.sleep(0.05) end
    assert.are.equal(before, thread.watchdog_status().reports)
  end)

  it("stops with ms = 0 and reports nothing then", function()
    assert.is_true(thread.watchdog { ms = 100 })
    assert.is_true(thread.watchdog { ms = 0 })
    local before = thread.watchdog_status().reports
    spin_here(200)
    tycho.sleep(0.01)
    assert.are.equal(before, thread.watchdog_status().reports)
  end)

  it("rejects bad options", function()
    assert.has_error(function() thread.watchdog(50) end,
      "bad argument #1 to 'watchdog' (table expected, got number)")
    assert.has_error(function() thread.watchdog {} end,
      "bad argument #1 to 'watchdog' (field 'ms' must be a non-negative integer, got nil)")
    assert.has_error(function() thread.watchdog { ms = -1 } end,
      "bad argument #1 to 'watchdog' (field 'ms' must be a non-negative integer, got -1)")
  end)
end)
