--- tycho.http.cors: Cross-Origin Resource Sharing (Fetch standard, section
--- 3.2) as router middleware. Requests without an Origin header go on with
--- Vary: Origin (or the static "*" answer). A preflight (OPTIONS with
--- Access-Control-Request-Method) is answered here with 204; other requests
--- get the Access-Control-Allow-* headers and go on to the route.
local check = require "tycho.check"

local M = {}

local DEFAULT_METHODS = "GET, HEAD, PUT, PATCH, POST, DELETE"

-- Raises at the caller of M.new: `level` counts the helpers in between
-- (default 4: field_error, a helper, M.new, its caller).
local function field_error(key, msg, level)
  error(("bad argument #1 to 'cors' (%s at field '%s')"):format(msg, key), level or 4)
end

-- A string, or a list of strings joined with ", "; nil stays nil.
local function list_option(opts, key)
  local v = opts[key]
  if v == nil or type(v) == "string" then return v end
  if type(v) ~= "table" then field_error(key, "string or table expected, got " .. type(v)) end
  for i, item in ipairs(v) do
    if type(item) ~= "string" then
      field_error(key, ("string expected at item %d, got %s"):format(i, type(item)))
    end
  end
  return table.concat(v, ", ")
end

-- An Origin header is "null" or scheme://host[:port], lower case, without
-- a path or a trailing slash: anything else in the options never matches.
local function check_origin(o, where)
  if o ~= "null" and (o ~= o:lower() or not o:match("^%a[%w+.-]*://[^/?#@]+$")) then
    field_error("origins", ("'%s'%s is not an origin (scheme://host[:port], lower case, "
      .. "no path)"):format(o, where), 5)
  end
end

-- The origin check: returns allow(origin) -> boolean and whether the answer
-- depends on the origin (then responses carry Vary: Origin).
local function origin_matcher(origins)
  if origins == nil or origins == "*" then return function() return true end, false end
  local t = type(origins)
  if t == "function" then
    return function(origin) return origins(origin) and true or false end, true
  end
  if t == "string" then
    check_origin(origins, "")
    return function(origin) return origin == origins end, true
  end
  if t ~= "table" then field_error("origins", "\"*\", string, table or function expected, got " .. t) end
  local set = {}
  for i, o in ipairs(origins) do
    if type(o) ~= "string" then
      field_error("origins", ("string expected at item %d, got %s"):format(i, type(o)))
    end
    check_origin(o, (" at item %d"):format(i))
    set[o] = true
  end
  return function(origin) return set[origin] == true end, true
end

local function check_options(opts)
  local max_age = opts.max_age
  if max_age ~= nil and math.type(max_age) ~= "integer" then
    field_error("max_age", "integer expected, got " .. (math.type(max_age) or type(max_age)))
  end
  if opts.credentials ~= nil and type(opts.credentials) ~= "boolean" then
    field_error("credentials", "boolean expected, got " .. type(opts.credentials))
  end
  if opts.credentials and (opts.origins == nil or opts.origins == "*") then
    error("bad argument #1 to 'cors' (credentials = true needs a list of origins or a "
      .. "function: browsers refuse credentials with origins = \"*\")", 3)
  end
end

---CORS middleware for app:use. opts: origins ("*" (default), an origin, a
---list, or function(origin) -> boolean), methods (default GET, HEAD, PUT,
---PATCH, POST, DELETE), headers (allowed request headers; default: those
---the preflight asks for), expose (response headers scripts may read),
---credentials (boolean), max_age (seconds a preflight may be cached).
---@param opts? table
---@return fun(req: table, res: table, next: function): any
function M.new(opts)
  check.opt(1, "cors", opts, "table")
  opts = opts or {}
  check_options(opts)
  local allow, varies = origin_matcher(opts.origins)
  local methods = list_option(opts, "methods") or DEFAULT_METHODS
  local headers = list_option(opts, "headers")
  local expose = list_option(opts, "expose")
  local credentials = opts.credentials and "true" or nil
  local max_age = opts.max_age and tostring(opts.max_age) or nil

  -- Sets the origin headers; false when the origin is not allowed.
  local function allow_origin(res, origin)
    if varies then res:header("Vary", "Origin") end
    if not allow(origin) then return false end
    res:header("Access-Control-Allow-Origin", varies and origin or "*")
    if credentials then res:header("Access-Control-Allow-Credentials", credentials) end
    return true
  end

  local function preflight(req, res, origin)
    if allow_origin(res, origin) then
      res:header("Access-Control-Allow-Methods", methods)
      local asked = req:header("Access-Control-Request-Headers")
      if headers then
        res:header("Access-Control-Allow-Headers", headers)
      elseif asked then
        res:header("Vary", varies and "Origin, Access-Control-Request-Headers"
          or "Access-Control-Request-Headers")
        res:header("Access-Control-Allow-Headers", asked)
      end
      if max_age then res:header("Access-Control-Max-Age", max_age) end
    end
    res:status(204)
    res:send("")
  end

  return function(req, res, next)
    local origin = req:header("Origin")
    if not origin then
      -- A cache may keep this answer and give it to a CORS request later
      -- (Fetch standard, "CORS protocol and HTTP caches"): say that it
      -- varies, or give it the static answer a CORS request would get.
      if varies then
        res:header("Vary", "Origin")
      else
        res:header("Access-Control-Allow-Origin", "*")
        if expose then res:header("Access-Control-Expose-Headers", expose) end
      end
      return next()
    end
    if req.method == "OPTIONS" and req:header("Access-Control-Request-Method") then
      return preflight(req, res, origin)
    end
    if allow_origin(res, origin) and expose then
      res:header("Access-Control-Expose-Headers", expose)
    end
    return next()
  end
end

return M
