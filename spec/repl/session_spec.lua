-- Specs for the REPL evaluator (lua/tycho/repl/session.lua): what every
-- REPL (terminal, piped stdin, attached client) does with its lines.
local session = require "tycho.repl.session"

-- A session writing into out/err buffers, with its own environment.
local function new_session()
  local out, err = {}, {}
  local env = setmetatable({}, { __index = _G })
  local s = session.new({
    env = env,
    write = function(t) out[#out + 1] = t end,
    write_err = function(t) err[#err + 1] = t end,
  })
  local function feed(...)
    local r
    for _, line in ipairs({ ... }) do r = s:feed(line) end
    return r
  end
  return s, feed, function() return table.concat(out) end, function() return table.concat(err) end, env
end

describe("repl session", function()
  it("evaluates expressions first, as `return <input>`", function()
    local _, feed, out = new_session()
    assert.are.equal("done", feed("1 + 1"))
    assert.are.equal("2\n", out())
  end)

  it("runs statements and prints nothing for them", function()
    local _, feed, out, _, env = new_session()
    feed("x = 10", "x * 2")
    assert.are.equal(10, env.x)
    assert.are.equal("20\n", out())
  end)

  it("prints several results separated by tabs", function()
    local _, feed, out = new_session()
    feed([[1, "two", {3}]])
    assert.are.equal('1\t"two"\t{ 3 }\n', out())
  end)

  it("keeps the last result in _", function()
    local _, feed, out, _, env = new_session()
    feed("40 + 2", "_ + 1", "y = 1")
    assert.are.equal("42\n43\n", out())
    assert.are.equal(43, env._)
  end)

  it("continues an incomplete chunk and shows the continuation prompt", function()
    local s, feed, out = new_session()
    assert.are.equal("> ", s:prompt())
    assert.are.equal("more", feed("function f(a)"))
    assert.are.equal(">> ", s:prompt())
    assert.are.equal("more", feed("  return a * 3"))
    assert.are.equal("done", feed("end"))
    assert.are.equal("> ", s:prompt())
    feed("f(4)")
    assert.are.equal("12\n", out())
  end)

  it("continues unfinished tables and long strings", function()
    local _, feed, out = new_session()
    assert.are.equal("more", feed("t = {"))
    assert.are.equal("more", feed("  1, 2,"))
    feed("}", "#t")
    assert.are.equal("more", feed("s = [[a"))
    feed("b]]", "s")
    assert.are.equal('2\n"a\\nb"\n', out())
  end)

  it("reports syntax errors that are not incomplete input at once", function()
    local s, feed, out, err = new_session()
    assert.are.equal("done", feed("x = = 1"))
    assert.matches("^repl:1: unexpected symbol near '='", err())
    assert.are.equal("", out())
    assert.are.equal(1, s.failures)
  end)

  it("prints runtime errors with a traceback and goes on", function()
    local s, feed, out, err = new_session()
    feed("error('boom')", "1")
    assert.matches("^repl:1: boom\nstack traceback:\n", err())
    assert.matches("in main chunk", err())
    assert.are.equal("1\n", out())
    assert.are.equal(1, s.failures)
  end)

  it("prints error values that are not strings", function()
    local _, feed, _, err = new_session()
    feed("error({code = 7})")
    assert.are.equal("error: { code = 7 }\n", err())
  end)

  it("lets a line await: tycho.sleep at the prompt", function()
    local _, feed, out = new_session()
    local t0 = tycho.hrtime()
    feed("tycho.sleep(0.02) return 'slept'")
    assert.are.equal('"slept"\n', out())
    assert.is_true(tycho.hrtime() - t0 >= 15e6)
  end)

  it("keeps the loop running while a line awaits", function()
    local _, feed, out, _, env = new_session()
    -- The input waits for a timer the loop must fire meanwhile.
    tycho.set_timeout(5, function() env.flag = true end)
    feed("for i = 1, 5000 do if flag then return 'seen', i > 1 end tycho.sleep(0.001) end")
    assert.are.equal('"seen"\ttrue\n', out())
  end)

  it("cancels a running line on interrupt", function()
    local s, feed, out, err, env = new_session()
    tycho.set_timeout(10, function()
      assert.are.equal("cancelled", s:interrupt())
    end)
    local t0 = tycho.hrtime()
    feed("tycho.sleep(100) finished = true")
    assert.is_true(tycho.hrtime() - t0 < 5e9)
    assert.are.equal("cancelled\n", err())
    assert.are.equal("", out())
    assert.is_nil(env.finished)
  end)

  it("runs inputs under a guard with the same results, errors and _", function()
    local out, err, events = {}, {}, {}
    local s = session.new({
      env = setmetatable({}, { __index = _G }),
      write = function(t) out[#out + 1] = t end,
      write_err = function(t) err[#err + 1] = t end,
      guard = function()
        events[#events + 1] = "guard:" .. tostring(tycho.in_task())
      end,
      unguard = function()
        events[#events + 1] = "unguard"
        return false
      end,
    })
    s:feed("1, 'two'")
    s:feed("_")
    s:feed("x = 1")
    s:feed("error('boom')")
    assert.are.equal('1\t"two"\n1\n', table.concat(out))
    local e = table.concat(err)
    assert.matches("^repl:1: boom\nstack traceback:\n\t%[C%]: in function 'error'\n\trepl:1: in main chunk\n$", e)
    assert.are.same({ "guard:true", "unguard", "guard:true", "unguard", "guard:true", "unguard",
      "guard:true", "unguard" }, events)
  end)

  it("reports an input its guard interrupted as cancelled", function()
    local err = {}
    local s = session.new({
      write = function() end,
      write_err = function(t) err[#err + 1] = t end,
      guard = function() end,
      unguard = function() return true end,
    })
    s:feed("error('interrupted', 0)")
    assert.are.equal("cancelled\n", table.concat(err))
  end)

  it("drops an unfinished chunk on interrupt", function()
    local s, feed, out = new_session()
    feed("function g()")
    assert.are.equal("cleared", s:interrupt())
    assert.are.equal("> ", s:prompt())
    assert.are.equal("idle", s:interrupt())
    feed("2")
    assert.are.equal("2\n", out())
  end)

  it("understands .help, .exit and reports unknown commands", function()
    local _, feed, out, err = new_session()
    assert.are.equal("done", feed(".help"))
    assert.matches("%.load FILE", out())
    assert.are.equal("exit", feed(".exit"))
    feed(".nope")
    assert.matches("unknown command '.nope'", err())
  end)

  it("says so when .reload has no app to reload", function()
    local _, feed, _, err = new_session()
    feed(".reload")
    assert.matches("no app to reload", err())
  end)

  it("reads .5 as a number, not a command", function()
    local _, feed, out = new_session()
    feed(".5 + 1")
    assert.are.equal("1.5\n", out())
  end)

  it("runs a file in the session's environment with .load", function()
    local path = os.tmpname()
    local f = assert(io.open(path, "w"))
    f:write("loaded_value = 7\ntycho.sleep(0.001)\nreturn loaded_value * 6\n")
    f:close()
    local _, feed, out, err, env = new_session()
    feed(".load " .. path)
    os.remove(path)
    assert.are.equal("", err())
    assert.are.equal("42\n", out())
    assert.are.equal(7, env.loaded_value)
    feed(".load " .. path)
    assert.matches("No such file", err())
  end)

  it("names the bad argument", function()
    local s = new_session()
    assert.has_error(function() s:feed(3) end, "bad argument #1 to 'feed' (string expected, got number)")
    assert.has_error(function() session.new({ env = 1 }) end,
      "bad argument #1 to 'new' (table expected, got number)")
  end)
end)
