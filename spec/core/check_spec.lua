-- Specs for tycho.check (lua/tycho/check.lua): the messages and the line
-- they point at, for required and optional arguments alike.
local tycho = require "tycho"
local check = require "tycho.check"

-- A library function with one required and one optional argument, and one
-- that checks through a helper (level 3: the helper's caller's caller).
local function lib(a, b)
  check.arg(1, "lib", a, "string")
  check.opt(2, "lib", b, "table")
  return a
end

local function helper(b) check.opt(2, "lib2", b, "table|number", 3) end

local function lib2(a, b)
  helper(b)
  return a
end

-- The error of fn(...), called from this file (not as a tail call).
local function error_of(fn, ...)
  local args = table.pack(...)
  local ok, err = pcall(function()
    local r = fn(table.unpack(args, 1, args.n))
    return r
  end)
  assert.is_false(ok)
  return err
end

describe("tycho.check", function()
  it("words errors as Lua's luaL_check* do", function()
    assert.matches("bad argument #1 to 'lib' %(string expected, got nil%)", error_of(lib))
    assert.matches("bad argument #2 to 'lib' %(table expected, got number%)", error_of(lib, "a", 1))
    assert.matches("%(table or number expected, got string%)", error_of(lib2, "a", "x"))
    assert.are.equal("a", lib("a"))
    assert.are.equal("a", lib2("a", 1))
  end)

  it("points at the caller's line for optional arguments as for required ones", function()
    assert.matches("^spec/core/check_spec.lua:%d+: bad argument #1", error_of(lib, 1))
    assert.matches("^spec/core/check_spec.lua:%d+: bad argument #2", error_of(lib, "a", 1))
    assert.matches("^spec/core/check_spec.lua:%d+: bad argument #2", error_of(lib2, "a", "x"))
  end)

  it("gives the caller's line in library functions that use it", function()
    assert.matches("^spec/core/check_spec.lua:%d+: bad argument #2 to 'mkdir'",
      error_of(tycho.fs.mkdir, "/nonexistent/x", 5))
    assert.matches("^spec/core/check_spec.lua:%d+: bad argument #1 to 'sleep'",
      error_of(tycho.sleep, "x"))
  end)
end)
