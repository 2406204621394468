--- tycho.http.cookie: Set-Cookie lines (RFC 6265 section 4.1) for
--- res:cookie and res:clear_cookie. Reading cookies (req.cookies) is in C
--- (src/http/cookie.c). Each cookie is one Set-Cookie line, never joined
--- with others, added next to the lines set before.
local core = require "tycho.http.core"

local M = {}

local append_header = core.append_header

-- Names are RFC 9110 tokens; values are cookie-octets (no blanks, DQUOTE,
-- comma, semicolon, backslash, controls or non-ASCII), optionally inside
-- one pair of double quotes.
local TOKEN = "^[%w!#$%%&'*+%-.^_`|~]+$"
local NOT_OCTET = "[\0- \",;\\\127-\255]"
local SAME_SITE = { strict = "Strict", lax = "Lax", none = "None" }

-- Errors name the argument; `level` is always counted from the function
-- that receives it (1 = itself), so a helper passes level + 1 down.
local function bad(n, fname, msg, level)
  error(("bad argument #%d to '%s' (%s)"):format(n, fname, msg), level + 1)
end

local function check_name(name, fname, level)
  if type(name) ~= "string" then
    bad(1, fname, "string expected, got " .. type(name), level + 1)
  end
  if not name:match(TOKEN) then
    bad(1, fname, "cookie name must be a token (letters, digits and !#$%&'*+-.^_`|~)", level + 1)
  end
end

local function check_value(value, fname, level)
  if type(value) ~= "string" then
    bad(2, fname, "string expected, got " .. type(value), level + 1)
  end
  local inner = value:match('^"(.*)"$') or value
  if inner:find(NOT_OCTET) then
    bad(2, fname, "cookie value contains a character cookies cannot carry "
      .. "(blank, '\"', ',', ';', '\\', control or non-ASCII): encode it, e.g. as "
      .. "base64 or with percent-escapes", level + 1)
  end
end

-- An attribute value for Path or Domain: any octet but controls and ';'.
local function attr_text(opts, key, fname, n, level)
  local v = opts[key]
  if v == nil then return nil end
  if type(v) ~= "string" then
    bad(n, fname, ("string expected at field '%s', got %s"):format(key, type(v)), level + 1)
  end
  if v == "" or v:find("[\0-\31\127;]") then
    bad(n, fname, ("field '%s' must be non-empty without ';' or control characters"):format(key),
      level + 1)
  end
  return v
end

local function attr_int(opts, key, fname, n, level)
  local v = opts[key]
  if v == nil then return nil end
  local i = math.tointeger(v)
  if not i then
    bad(n, fname, ("integer expected at field '%s', got %s"):format(key,
      type(v) == "number" and "a fraction" or type(v)), level + 1)
  end
  return i
end

-- Expires as epoch seconds: an IMF-fixdate has a four-digit year, and
-- cookie dates start in 1601 (RFC 6265 section 5.1.1).
local EXPIRES_MIN, EXPIRES_MAX = -11644473600, 253402300799

local function attr_expires(opts, fname, n, level)
  local v = attr_int(opts, "expires", fname, n, level + 1)
  if v and (v < EXPIRES_MIN or v > EXPIRES_MAX) then
    bad(n, fname, "field 'expires' out of range (years 1601 to 9999)", level + 1)
  end
  return v
end

local function attr_flag(opts, key, fname, n, level)
  local v = opts[key]
  if v ~= nil and type(v) ~= "boolean" then
    bad(n, fname, ("boolean expected at field '%s', got %s"):format(key, type(v)), level + 1)
  end
  return v
end

local function attr_same_site(opts, fname, n, level)
  local v = opts.same_site
  if v == nil then return nil end
  local canon = type(v) == "string" and SAME_SITE[v:lower()]
  if not canon then
    bad(n, fname, "field 'same_site' must be \"Strict\", \"Lax\" or \"None\"", level + 1)
  end
  return canon
end

-- Checks the rules browsers enforce: SameSite=None and Partitioned need
-- Secure; the __Secure- and __Host- name prefixes.
local function check_rules(name, opts, fname, n, level)
  local secure = opts.secure
  if opts.same_site and opts.same_site:lower() == "none" and not secure then
    bad(n, fname, "same_site = \"None\" requires secure = true (browsers drop the cookie)",
      level + 1)
  end
  if opts.partitioned and not secure then
    bad(n, fname, "partitioned = true requires secure = true (browsers drop the cookie)",
      level + 1)
  end
  -- Browsers match the prefixes in any case (RFC 6265bis).
  local lower = name:sub(1, 9):lower()
  if lower == "__secure-" and not secure then
    bad(n, fname, "a __Secure- cookie requires secure = true", level + 1)
  end
  if lower:sub(1, 7) == "__host-" and (not secure or opts.path ~= "/" or opts.domain) then
    bad(n, fname, "a __Host- cookie requires secure = true, path = \"/\" and no domain",
      level + 1)
  end
end

-- The attributes part ("; Path=/; HttpOnly") from opts (argument n of
-- fname), checked.
local function attributes(name, opts, fname, n, level)
  if type(opts) ~= "table" then
    bad(n, fname, "table expected, got " .. type(opts), level + 1)
  end
  local max_age = attr_int(opts, "max_age", fname, n, level + 1)
  local expires = attr_expires(opts, fname, n, level + 1)
  local path = attr_text(opts, "path", fname, n, level + 1)
  local domain = attr_text(opts, "domain", fname, n, level + 1)
  local same_site = attr_same_site(opts, fname, n, level + 1)
  for _, key in ipairs { "secure", "http_only", "partitioned" } do
    attr_flag(opts, key, fname, n, level + 1)
  end
  check_rules(name, opts, fname, n, level + 1)
  local parts = {}
  local function add(s) parts[#parts + 1] = s end
  if max_age then add("; Max-Age=" .. max_age) end
  if expires then add("; Expires=" .. os.date("!%a, %d %b %Y %H:%M:%S GMT", expires)) end
  if domain then add("; Domain=" .. domain) end
  if path then add("; Path=" .. path) end
  if opts.secure then add("; Secure") end
  if opts.http_only then add("; HttpOnly") end
  if same_site then add("; SameSite=" .. same_site) end
  if opts.partitioned then add("; Partitioned") end
  return table.concat(parts)
end

local EMPTY = {}

-- The Set-Cookie line, checked; errors point `level` frames up.
local function line(fname, name, value, opts, level)
  check_name(name, fname, level + 1)
  check_value(value, fname, level + 1)
  return name .. "=" .. value .. attributes(name, opts or EMPTY, fname, 3, level + 1)
end

---The Set-Cookie header value for name=value with opts, checked as
---res:cookie checks them.
---@param name string
---@param value string
---@param opts? table
---@return string
function M.serialize(name, value, opts)
  local s = line("serialize", name, value, opts, 2) -- not a tail call: keeps the level
  return s
end

-- res:cookie(name, value [, opts]): adds one Set-Cookie line; returns res.
local function cookie(res, name, value, opts)
  append_header(res, "Set-Cookie", line("cookie", name, value, opts, 2))
  return res
end

-- res:clear_cookie(name [, opts]): tells the browser to drop the cookie
-- (empty value, Max-Age=0 and an Expires in the past); opts should carry
-- the path and domain it was set with. Returns res.
local function clear_cookie(res, name, opts)
  check_name(name, "clear_cookie", 2)
  if opts ~= nil and type(opts) ~= "table" then
    bad(2, "clear_cookie", "table expected, got " .. type(opts), 2)
  end
  local o = {}
  for k, v in pairs(opts or EMPTY) do o[k] = v end
  o.max_age, o.expires = 0, 0
  append_header(res, "Set-Cookie", name .. "=" .. attributes(name, o, "clear_cookie", 2, 2))
  return res
end

core.response_methods.cookie = cookie
core.response_methods.clear_cookie = clear_cookie

return M
