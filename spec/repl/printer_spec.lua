-- Specs for the REPL's pretty printer (lua/tycho/repl/printer.lua).
local printer = require "tycho.repl.printer"
local fmt = printer.format

describe("repl printer", function()
  it("prints scalars the way Lua reads them back", function()
    assert.are.equal("42", fmt(42))
    assert.are.equal("1.5", fmt(1.5))
    assert.are.equal("1.0", fmt(1.0))
    assert.are.equal("true", fmt(true))
    assert.are.equal("nil", fmt(nil))
  end)

  it("quotes and escapes strings so that load() gives back the same bytes", function()
    local s = 'a\nb\0c\1"\\\t é \255x'
    local q = fmt(s)
    assert.are.equal('"a\\nb\\000c\\001\\"\\\\\\t é \\255x"', q)
    assert.are.equal(s, load("return " .. q)())
  end)

  it("prints arrays and sorted keys, short tables on one line", function()
    assert.are.equal("{ 1, 2, 3 }", fmt({ 1, 2, 3 }))
    assert.are.equal('{ 1, [10] = "x", a = 1, b = 2, ["not id"] = true }',
      fmt({ 1, b = 2, a = 1, [10] = "x", ["not id"] = true }))
    assert.are.equal("{}", fmt({}))
    assert.are.equal("{ { 1 }, { 2 } }", fmt({ { 1 }, { 2 } }))
  end)

  it("indents nested tables that do not fit on a line", function()
    local t = { name = string.rep("n", 40), list = { string.rep("x", 40) } }
    assert.are.equal(
      '{\n  list = { "' .. string.rep("x", 40) .. '" },\n  name = "' .. string.rep("n", 40) .. '"\n}',
      fmt(t))
  end)

  it("marks cycles instead of recursing", function()
    local t = { a = 1 }
    t.self = t
    t.child = { parent = t }
    assert.are.equal("{ a = 1, child = { parent = <cycle> }, self = <cycle> }", fmt(t))
  end)

  it("prints a table shared by two fields twice: only cycles are marked", function()
    local shared = { 1 }
    assert.are.equal("{ a = { 1 }, b = { 1 } }", fmt({ a = shared, b = shared }))
  end)

  it("stops at the depth limit", function()
    local t = { a = { b = { c = { d = 1 } } } }
    assert.are.equal("{ a = { b = {...} } }", fmt(t, { depth = 2 }))
    assert.are.equal("{ a = { b = { c = { d = 1 } } } }", fmt(t))
  end)

  it("stops at the width limit and counts what it left out", function()
    local t = {}
    for i = 1, 10 do t[i] = i end
    t.x = true
    assert.are.equal("{ 1, 2, 3, ... (8 more) }", fmt(t, { width = 3 }))
  end)

  it("shows functions with their source location", function()
    local f = function() end
    local line = debug.getinfo(1, "l").currentline - 1
    assert.are.equal(("<function %s:%d>"):format(debug.getinfo(1, "S").short_src, line), fmt(f))
    assert.are.equal("<function [C]>", fmt(print))
  end)

  it("shows userdata with their type", function()
    assert.matches("^<FILE%* file %(0x%x+%)>$", fmt(io.stdout))
    local timer = tycho.uv.new_timer()
    assert.matches("^<uv_timer_t: 0x%x+>$", fmt(timer))
    timer:close()
    assert.are.equal("<thread>", fmt(coroutine.create(print)))
  end)

  it("uses __tostring when a table has one", function()
    local obj = setmetatable({}, { __tostring = function() return "Point(1, 2)" end })
    assert.are.equal("Point(1, 2)", fmt(obj))
  end)

  it("colours only when asked", function()
    assert.are.equal("{ 1 }", fmt({ 1 }))
    assert.are.equal("{ \27[33m1\27[0m, \27[32m\"s\"\27[0m }", fmt({ 1, "s" }, { color = true }))
  end)

  it("separates several values with tabs", function()
    assert.are.equal('1\t"two"\tnil', printer.format_all(table.pack(1, "two", nil)))
  end)
end)
