--- tycho.repl.complete: tab completion for the REPL. Completes globals and
--- keywords, `tycho.` members (submodules not loaded yet included), and the
--- fields of tables reached by dotted paths; after a colon, the methods of
--- the value (strings through the string library, tables and userdata
--- through their metatable's __index). Looking names up runs no code of
--- the app: lookups are raw and follow __index only where it is a table.
local M = {}

local KEYWORDS = {
  "and", "break", "do", "else", "elseif", "end", "false", "for", "function",
  "goto", "if", "in", "local", "nil", "not", "or", "repeat", "return", "then",
  "true", "until", "while",
}

local MAX_CHAIN = 8 -- __index tables followed when looking up or listing

local function is_name(s)
  return type(s) == "string" and s:match("^[%a_][%w_]*$") ~= nil
end

-- The next table an __index chain leads to from v, or nil. Only tables
-- are followed: an __index function is code (the app's, maybe with side
-- effects or a slow lookup), and pressing Tab must never run it.
local function index_table(v)
  local mt = getmetatable(v)
  local index = type(mt) == "table" and rawget(mt, "__index") or nil
  if type(index) == "table" then return index end
  return nil
end

-- v[k] as far as raw lookups along __index tables find it, or nil.
local function get(v, k)
  if type(v) == "string" then v = string end
  for _ = 1, MAX_CHAIN do
    if type(v) == "table" then
      local r = rawget(v, k)
      if r ~= nil then return r end
    end
    v = index_table(v)
    if v == nil then return nil end
  end
  return nil
end

-- The value a dotted path such as "tycho.fs" names in env, or nil.
local function resolve(path, env)
  local v = env
  for name in (path .. "."):gmatch("([^.]*)%.") do
    if not is_name(name) then return nil end
    v = get(v, name)
    if v == nil then return nil end
  end
  return v
end

local function add_fields(t, names, only_functions)
  for k, v in next, t do
    if is_name(k) and (not only_functions or type(v) == "function") then names[k] = true end
  end
end

-- Fields of v: its own (tables), then those its metatable's __index
-- tables offer.
local function collect(v, names, only_functions)
  if type(v) == "string" then v = string end
  local seen = 0
  while v ~= nil and seen < MAX_CHAIN do
    seen = seen + 1
    if type(v) == "table" then add_fields(v, names, only_functions) end
    v = index_table(v)
  end
end

-- Submodules of `prefix` that could be required (embedded in the binary,
-- preloaded from C, or already loaded).
local function submodules(prefix, names)
  local list = {}
  local ok, line = pcall(require, "tycho.repl.line")
  if ok then list = line.modules() end
  for name in pairs(package.preload) do list[#list + 1] = name end
  for name in pairs(package.loaded) do list[#list + 1] = name end
  for _, name in ipairs(list) do
    local rest = name:sub(#prefix + 2)
    if name:sub(1, #prefix + 1) == prefix .. "." and is_name(rest) then names[rest] = true end
  end
end

---Candidates completing `word` (the text before the cursor back to the
---previous operator or space), as full replacements of the word.
---@param word string
---@param env table the REPL's environment
---@return string[] sorted
function M.candidates(word, env)
  local base, sep, prefix = word:match("^(.-)([.:])([%w_]*)$")
  local names = {}
  if base then
    local v = resolve(base, env)
    if v == nil then return {} end
    collect(v, names, sep == ":")
    if sep == "." and base == "tycho" and v == get(env, "tycho") then submodules("tycho", names) end
  elseif word == "" or word:match("^[%a_][%w_]*$") then
    base, sep, prefix = "", "", word
    collect(env, names, false)
    for _, k in ipairs(KEYWORDS) do names[k] = true end
  else
    return {}
  end
  local out = {}
  for name in pairs(names) do
    -- Metamethods (__index, __gc) only when asked for by their prefix.
    local hidden = name:sub(1, 2) == "__" and prefix:sub(1, 2) ~= "__"
    if not hidden and name:sub(1, #prefix) == prefix then out[#out + 1] = base .. sep .. name end
  end
  table.sort(out)
  return out
end

return M
