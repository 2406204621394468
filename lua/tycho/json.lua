--- tycho.json: lua-cjson (Debian's 2.1.0) with defaults that suit a server:
--- sparse arrays are encoded rather than refused, decode of bad input returns
--- `nil, message` instead of raising, and `json.empty_array` encodes as `[]`
--- (cjson 2.1.0 has no such marker: an empty table encodes as `{}`).
local cjson = require "cjson"

local codec = cjson.new()
codec.encode_sparse_array(true)

local M = {}

---The JSON null value (decoded `null`; encodes as `null`).
M.null = cjson.null

-- Encoding is in C (src/core/json.c): it calls the codec with no Lua
-- wrapper around it, and res:json uses it directly.
local jcore = require "tycho.json.core"
jcore.set_codec(codec.encode)

---Marker value that encodes as `[]`: a string no valid UTF-8 text contains,
---whose quoted form encode swaps for `[]`.
M.empty_array = jcore.empty_array

local decode = codec.decode

---Encodes a Lua value as JSON text. Raises on values JSON cannot hold
---(functions, NaN, inf, nesting deeper than 1000), at the caller's line.
---@param value any
---@return string
M.encode = jcore.encode

-- cjson 2.1.0 decodes every number as a float; JSON has one number type,
-- and `{"id": 3}` should give 3, not 3.0. Integral values that fit become
-- integers (as `math.tointeger` decides), in place.
local tointeger = math.tointeger

local function integers(t)
  for k, v in next, t do
    local kind = type(v)
    if kind == "number" then
      local i = tointeger(v)
      if i then t[k] = i end
    elseif kind == "table" then
      integers(v)
    end
  end
  return t
end

---Decodes JSON text. Returns `nil, message` for invalid JSON. Integral
---numbers decode as Lua integers, others as floats.
---@param text string
---@return any value, string? err
function M.decode(text)
  if type(text) ~= "string" then
    error(("bad argument #1 to 'decode' (string expected, got %s)"):format(type(text)), 2)
  end
  local ok, value = pcall(decode, text)
  if not ok then return nil, (tostring(value):gsub("^.-:%d+: ", "")) end
  local kind = type(value)
  if kind == "table" then return integers(value) end
  if kind == "number" then return tointeger(value) or value end
  return value
end

return M
