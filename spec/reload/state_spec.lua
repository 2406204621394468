-- Specs for tycho.state (lua/tycho/state.lua): persistent values keyed by
-- name, created once by their init.
local tycho = require "tycho"
local state = require "tycho.state"

describe("tycho.state", function()
  local name
  local n = 0
  before_each(function()
    n = n + 1
    name = "state_spec." .. n
  end)
  after_each(function() state.forget(name) end)

  it("is callable, through tycho's lazy fields too", function()
    assert.are.equal("function", type(getmetatable(tycho.state).__call))
    assert.are.equal(tycho.state(name), state.get(name))
    assert.are.equal(state(name), require("tycho").state(name))
  end)

  it("keeps its values when the module is loaded a second time", function()
    local t = tycho.state(name)
    package.loaded["tycho.state"] = nil
    local again = require "tycho.state"
    package.loaded["tycho.state"] = state
    assert.are_not.equal(state, again)
    assert.are.equal(t, again(name))
  end)

  it("creates the value with init once and returns it afterwards", function()
    local calls = 0
    local function init()
      calls = calls + 1
      return { created = calls }
    end
    local a = tycho.state(name, init)
    local b = tycho.state(name, init)
    assert.are.equal(a, b)
    assert.are.equal(1, calls)
    assert.are.equal(1, a.created)
  end)

  it("defaults to an empty table", function()
    local t = tycho.state(name)
    assert.are.same({}, t)
    t.x = 1
    assert.are.equal(1, tycho.state(name).x)
  end)

  it("keeps any non-nil value init returns", function()
    assert.are.equal(0, tycho.state(name, function() return 0 end))
    assert.are.equal(0, tycho.state(name, function() return 99 end))
  end)

  it("raises when init returns nil, and tries again next time", function()
    assert.has_error(function() tycho.state(name, function() end) end,
      "state '" .. name .. "': init returned nil")
    assert.is_false(state.has(name))
    assert.are.equal("ok", tycho.state(name, function() return "ok" end))
  end)

  it("forgets a value so init runs again", function()
    tycho.state(name, function() return "one" end)
    assert.is_true(state.has(name))
    state.forget(name)
    assert.is_false(state.has(name))
    assert.are.equal("two", tycho.state(name, function() return "two" end))
  end)

  it("lets init await, and the first value stored wins", function()
    local inits = 0
    local function slow_init()
      inits = inits + 1
      local mine = {}
      tycho.sleep(0.005)
      return mine
    end
    local other = tycho.spawn(function() return tycho.state(name, slow_init) end)
    local mine = tycho.state(name, slow_init)
    assert.are.equal(mine, other:join())
    assert.are.equal(2, inits)
  end)

  it("says when the current task runs an init, also after an error", function()
    assert.is_false(state.building())
    local inside
    tycho.state(name, function()
      inside = state.building()
      return {}
    end)
    assert.is_true(inside)
    assert.is_false(state.building())
    pcall(tycho.state, name .. ".x", function() error("boom") end)
    assert.is_false(state.building())
  end)

  it("does not count another task as building", function()
    local other
    local started = false
    local t = tycho.spawn(function()
      started = true
      other = state.building()
    end)
    tycho.state(name, function()
      tycho.sleep(0.001) -- lets the other task run while this init waits
      return {}
    end)
    t:join()
    assert.is_true(started)
    assert.is_false(other)
  end)

  it("names its bad arguments", function()
    assert.has_error(function() tycho.state() end,
      "bad argument #1 to 'state' (string expected, got nil)")
    assert.has_error(function() tycho.state(name, 5) end,
      "bad argument #2 to 'state' (function expected, got number)")
    assert.has_error(function() state.forget(1) end,
      "bad argument #1 to 'forget' (string expected, got number)")
    assert.has_error(function() state.has() end,
      "bad argument #1 to 'has' (string expected, got nil)")
  end)

  it("points a misuse at the caller's line", function()
    local ok, err = pcall(function() tycho.state(nil) end)
    assert.is_false(ok)
    assert.matches("state_spec%.lua:%d+: bad argument #1 to 'state'", err)
  end)
end)
