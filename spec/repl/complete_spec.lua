-- Specs for REPL tab completion (lua/tycho/repl/complete.lua).
local complete = require "tycho.repl.complete"

local function has(list, item)
  for _, v in ipairs(list) do if v == item then return true end end
  return false
end

describe("repl completion", function()
  local env = setmetatable({
    config = { port = 8080, db = { host = "h", hostname = "n" } },
    greeting = "hi",
  }, { __index = _G })

  it("completes globals and keywords", function()
    local c = complete.candidates("pri", env)
    assert.are.same({ "print" }, c)
    assert.is_true(has(complete.candidates("fun", env), "function"))
    assert.is_true(has(complete.candidates("con", env), "config"))
  end)

  it("completes fields along dotted paths", function()
    assert.are.same({ "config.db.host", "config.db.hostname" }, complete.candidates("config.db.ho", env))
    assert.are.same({ "string.format" }, complete.candidates("string.form", env))
  end)

  it("completes tycho members, submodules not loaded yet included", function()
    local c = complete.candidates("tycho.", env)
    assert.is_true(has(c, "tycho.sleep"))
    assert.is_true(has(c, "tycho.spawn"))
    assert.is_true(has(c, "tycho.json"))
    assert.is_true(has(c, "tycho.fs"))
    assert.are.same({ "tycho.set_interval", "tycho.set_timeout" }, complete.candidates("tycho.se", env))
  end)

  it("completes methods after a colon", function()
    assert.are.same({ "greeting:upper" }, complete.candidates("greeting:up", env))
    assert.are.same({}, complete.candidates("config:po", env)) -- a number, not a method
  end)

  it("follows __index tables for fields", function()
    local Class = { area = function() end }
    Class.__index = Class
    env.shape = setmetatable({ w = 1 }, Class)
    assert.are.same({ "shape:area" }, complete.candidates("shape:a", env))
    assert.are.same({ "shape.area", "shape.w" }, complete.candidates("shape.", env))
    assert.are.same({ "shape.__index" }, complete.candidates("shape.__", env))
  end)

  it("offers nothing for unknown paths or non-names", function()
    assert.are.same({}, complete.candidates("nosuch.x", env))
    assert.are.same({}, complete.candidates("1.", env))
    assert.are.same({}, complete.candidates("greeting.x.y", env))
  end)

  it("runs no __index function: lookups are raw along __index tables", function()
    local calls = 0
    env.lazy = setmetatable({ real = { leaf = 1 } }, {
      __index = function()
        calls = calls + 1
        return { leaf = 2 }
      end,
    })
    assert.are.same({ "lazy.real.leaf" }, complete.candidates("lazy.real.l", env))
    assert.are.same({}, complete.candidates("lazy.virtual.l", env))
    assert.are.same({}, complete.candidates("lazy:x", env))
    assert.are.equal(0, calls)
  end)

  it("survives an __index that raises", function()
    env.trap = setmetatable({}, { __index = function() error("trap") end })
    assert.are.same({}, complete.candidates("trap.a.b", env))
  end)
end)
