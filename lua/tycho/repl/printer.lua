--- tycho.repl.printer: how the REPL shows values. Nested tables with
--- indentation and sorted keys, cycles marked, depth and width limits,
--- strings quoted and escaped, functions with their source location,
--- userdata with their type. Colours (ANSI) only when asked for.
local M = {}

M.defaults = {
  depth = 5,      -- levels of tables shown; deeper ones print as {...}
  width = 64,     -- entries shown per table before "... (N more)"
  line = 72,      -- a table fits on one line up to this many characters
  indent = "  ",
  color = false,
}

local COLORS = {
  number = "\27[33m", string = "\27[32m", boolean = "\27[35m",
  ["nil"] = "\27[1;30m", ["function"] = "\27[36m", userdata = "\27[36m",
  thread = "\27[36m", mark = "\27[1;30m",
}
local RESET = "\27[0m"

local ESCAPES = {
  ["\a"] = "\\a", ["\b"] = "\\b", ["\f"] = "\\f", ["\n"] = "\\n",
  ["\r"] = "\\r", ["\t"] = "\\t", ["\v"] = "\\v", ["\\"] = "\\\\",
  ['"'] = '\\"',
}

local function escape_byte(c)
  return ESCAPES[c] or ("\\%03d"):format(c:byte())
end

-- Escapes the bytes that are not part of valid UTF-8.
local function escape_invalid(s)
  local parts, i = {}, 1
  while true do
    local len, bad = utf8.len(s, i)
    if len then
      parts[#parts + 1] = s:sub(i)
      return table.concat(parts)
    end
    parts[#parts + 1] = s:sub(i, bad - 1)
    parts[#parts + 1] = escape_byte(s:sub(bad, bad))
    i = bad + 1
  end
end

---Quotes a string as a Lua literal that reads back to the same bytes:
---control characters and invalid UTF-8 are escaped, printable UTF-8 kept.
---@param s string
---@return string
function M.quote(s)
  return '"' .. escape_invalid((s:gsub('[%z\1-\31\127\\"]', escape_byte))) .. '"'
end

local function is_identifier(k)
  return type(k) == "string" and k:match("^[%a_][%w_]*$") ~= nil and not ({
    ["and"] = 1, ["break"] = 1, ["do"] = 1, ["else"] = 1, ["elseif"] = 1,
    ["end"] = 1, ["false"] = 1, ["for"] = 1, ["function"] = 1, ["goto"] = 1,
    ["if"] = 1, ["in"] = 1, ["local"] = 1, ["nil"] = 1, ["not"] = 1,
    ["or"] = 1, ["repeat"] = 1, ["return"] = 1, ["then"] = 1, ["true"] = 1,
    ["until"] = 1, ["while"] = 1,
  })[k]
end

-- Keys sort by type (numbers, strings, then the rest), then by value.
local TYPE_ORDER = { number = 1, string = 2, boolean = 3 }
local function key_less(a, b)
  local ta, tb = type(a), type(b)
  if ta ~= tb then
    return (TYPE_ORDER[ta] or 9) < (TYPE_ORDER[tb] or 9) or
      ((TYPE_ORDER[ta] or 9) == (TYPE_ORDER[tb] or 9) and ta < tb)
  end
  if ta == "number" or ta == "string" then return a < b end
  if ta == "boolean" then return (not a) and b end
  return tostring(a) < tostring(b)
end

local function function_text(f)
  local info = debug.getinfo(f, "S")
  if info.what == "C" then return "<function [C]>" end
  return ("<function %s:%d>"):format(info.short_src, info.linedefined)
end

local function type_name(v)
  local mt = getmetatable(v)
  local name = type(mt) == "table" and rawget(mt, "__name")
  return type(name) == "string" and name or type(v)
end

-- tostring() through a metamethod may fail or return a non-string.
local function safe_tostring(v)
  local ok, s = pcall(tostring, v)
  if ok and type(s) == "string" then return s end
  return nil
end

local function has_tostring(v)
  local mt = getmetatable(v)
  return type(mt) == "table" and rawget(mt, "__tostring") ~= nil
end

local Printer = {}
Printer.__index = Printer

function Printer:paint(kind, text)
  if not self.color then return text end
  return COLORS[kind] .. text .. RESET
end

function Printer:scalar(v)
  local t = type(v)
  if t == "string" then return self:paint("string", M.quote(v)) end
  if t == "number" or t == "boolean" or t == "nil" then
    return self:paint(t, tostring(v))
  end
  if t == "function" then return self:paint("function", function_text(v)) end
  if t == "userdata" or t == "thread" then
    local name = type_name(v)
    local s = has_tostring(v) and safe_tostring(v)
    if s and s ~= "" then
      if s:find(name, 1, true) then return self:paint(t, "<" .. s .. ">") end
      return self:paint(t, ("<%s %s>"):format(name, s))
    end
    return self:paint(t, "<" .. name .. ">")
  end
  return self:paint("mark", "<" .. t .. ">")
end

function Printer:key(k, level)
  if is_identifier(k) then return k end
  local inner = type(k) == "table" and self:paint("mark", "<table>") or self:value(k, level)
  return "[" .. inner .. "]"
end

-- Visible width of text with colour codes left out.
local function visible_len(s)
  return utf8.len((s:gsub("\27%[[%d;]*m", ""))) or #s
end

function Printer:table(t, level)
  if self.path[t] then return self:paint("mark", "<cycle>") end
  if has_tostring(t) then
    local s = safe_tostring(t)
    if s then return s end
  end
  if level >= self.depth then return self:paint("mark", "{...}") end
  self.path[t] = true
  local items, n = {}, 0
  local len = rawlen(t)
  local shown = 0
  for i = 1, len do
    if shown >= self.width then break end
    shown = shown + 1
    items[#items + 1] = self:value(rawget(t, i), level + 1)
  end
  local keys = {}
  for k in next, t do
    if not (math.type(k) == "integer" and k >= 1 and k <= len) then keys[#keys + 1] = k end
  end
  n = len + #keys
  table.sort(keys, key_less)
  for _, k in ipairs(keys) do
    if shown >= self.width then break end
    shown = shown + 1
    items[#items + 1] = self:key(k, level + 1) .. " = " .. self:value(rawget(t, k), level + 1)
  end
  self.path[t] = nil
  if n > shown then
    items[#items + 1] = self:paint("mark", ("... (%d more)"):format(n - shown))
  end
  if #items == 0 then return "{}" end
  local one = "{ " .. table.concat(items, ", ") .. " }"
  if visible_len(one) + #self.indent * level <= self.line and not one:find("\n") then
    return one
  end
  local pad = self.indent:rep(level)
  return "{\n" .. pad .. self.indent .. table.concat(items, ",\n" .. pad .. self.indent)
    .. "\n" .. pad .. "}"
end

function Printer:value(v, level)
  if type(v) == "table" then return self:table(v, level) end
  return self:scalar(v)
end

---Formats one value.
---@param v any
---@param opts? {depth?: integer, width?: integer, line?: integer, color?: boolean}
---@return string
function M.format(v, opts)
  local p = setmetatable({ path = {} }, Printer)
  for k, d in pairs(M.defaults) do
    local o = opts and opts[k]
    if o == nil then o = d end
    p[k] = o
  end
  return p:value(v, 0)
end

---Formats n values separated by tabs (the way the REPL shows results).
---@param values table packed values with n
---@param opts? table as for format
---@return string
function M.format_all(values, opts)
  local parts = {}
  for i = 1, values.n do parts[i] = M.format(values[i], opts) end
  return table.concat(parts, "\t")
end

return M
