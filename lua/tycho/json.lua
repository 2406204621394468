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

-- The marker is a string no valid UTF-8 text contains; encode swaps its
-- quoted form for `[]`, and only scans for it when it could be there.
local EMPTY = "\xff\xfe[]\xff"
local EMPTY_QUOTED = '"' .. EMPTY .. '"'
---Marker value that encodes as `[]`.
M.empty_array = EMPTY

local encode, decode = codec.encode, codec.decode
local find, gsub = string.find, string.gsub

---Encodes a Lua value as JSON text. Raises on values JSON cannot hold
---(functions, NaN, inf, nesting deeper than 1000), at the caller's line.
---@param value any
---@return string
function M.encode(value)
  local ok, text = pcall(encode, value)
  if not ok then error((tostring(text):gsub("^.-:%d+: ", "")), 2) end
  if find(text, EMPTY_QUOTED, 1, true) then
    text = gsub(text, '"\xff\xfe%[%]\xff"', "[]")
  end
  return text
end

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
