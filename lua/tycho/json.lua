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

---Encodes a Lua value as JSON text. Raises on values JSON cannot hold.
---@param value any
---@return string
function M.encode(value)
  local text = encode(value)
  if find(text, EMPTY_QUOTED, 1, true) then
    text = gsub(text, '"\xff\xfe%[%]\xff"', "[]")
  end
  return text
end

---Decodes JSON text. Returns `nil, message` for invalid JSON.
---@param text string
---@return any value, string? err
function M.decode(text)
  if type(text) ~= "string" then
    error(("bad argument #1 to 'decode' (string expected, got %s)"):format(type(text)), 2)
  end
  local ok, value = pcall(decode, text)
  if ok then return value end
  return nil, (tostring(value):gsub("^.-:%d+: ", ""))
end

return M
