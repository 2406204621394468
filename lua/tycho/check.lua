--- Argument checks for the Lua library, with the same wording as Lua's own
--- `luaL_check*` errors: "bad argument #1 to 'sleep' (number expected, got nil)".
local M = {}

---Raises unless `value` has type `expected` (a type name, or several
---separated by "|").
---@param n integer argument position
---@param fname string function name for the message
---@param value any
---@param expected string
---@param level? integer error level, default: the caller's caller
function M.arg(n, fname, value, expected, level)
  local got = type(value)
  if got == expected then return value end
  for t in expected:gmatch("[^|]+") do
    if t == got then return value end
  end
  error(("bad argument #%d to '%s' (%s expected, got %s)")
    :format(n, fname, expected:gsub("|", " or "), got), (level or 2) + 1)
end

---Like arg, but nil is accepted.
function M.opt(n, fname, value, expected, level)
  if value == nil then return nil end
  local v = M.arg(n, fname, value, expected, (level or 2) + 1) -- not a tail call: keeps our frame
  return v
end

return M
