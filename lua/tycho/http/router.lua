--- tycho.http.router: routes by method and path pattern, with middleware.
--- Patterns: literal segments, `:name` parameters (one segment) and a final
--- `*` or `*name` wildcard (the rest of the path). Static paths are found by
--- one table lookup; patterned ones are tried in the order they were added.
--- 404 when nothing matches, 405 with Allow when the path exists for other
--- methods, HEAD falls back to GET.
local check = require "tycho.check"

local Router = {}
Router.__index = Router

local METHODS = { "GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS" }

local function split(path)
  local segs = {}
  for seg in path:gmatch("[^/]+") do segs[#segs + 1] = seg end
  return segs
end

local function compile(pattern)
  if pattern:sub(1, 1) ~= "/" then
    error(("bad route pattern '%s' (must start with /)"):format(pattern), 4)
  end
  local segs, dynamic = split(pattern), false
  for i, seg in ipairs(segs) do
    local first = seg:sub(1, 1)
    if first == ":" then
      if #seg == 1 then error(("bad route pattern '%s' (empty parameter name)"):format(pattern), 4) end
      segs[i] = { param = seg:sub(2) }
      dynamic = true
    elseif first == "*" then
      if i ~= #segs then error(("bad route pattern '%s' (* must be last)"):format(pattern), 4) end
      segs[i] = { rest = #seg > 1 and seg:sub(2) or "*" }
      dynamic = true
    end
  end
  return segs, dynamic
end

local function match(segs, path_segs)
  local params = {}
  for i, seg in ipairs(segs) do
    if type(seg) == "table" and seg.rest then
      params[seg.rest] = table.concat(path_segs, "/", i)
      return params
    end
    local got = path_segs[i]
    if got == nil then return nil end
    if type(seg) == "table" then
      params[seg.param] = got
    elseif seg ~= got then
      return nil
    end
  end
  if #path_segs ~= #segs then return nil end
  return params
end

local function normalize(path)
  if #path > 1 and path:sub(-1) == "/" then return path:sub(1, -2) end
  return path
end

---A new, empty router.
---@return table router
function Router.new()
  Router.created = (Router.created or 0) + 1 -- `tycho run` warns when one is built, not returned
  return setmetatable({ static = {}, dynamic = {}, middleware = {}, known = {} }, Router)
end

---Adds a route for `method` ("GET", ..., or "*" for any).
---@param method string
---@param pattern string
---@param fn fun(req: table, res: table): any
function Router:route(method, pattern, fn)
  check.arg(1, "route", method, "string")
  check.arg(2, "route", pattern, "string")
  check.arg(3, "route", fn, "function")
  method = method:upper()
  local segs, dynamic = compile(pattern)
  if dynamic then
    self.dynamic[#self.dynamic + 1] = { method = method, segs = segs, fn = fn }
  else
    local key = normalize(pattern)
    self.static[key] = self.static[key] or {}
    self.static[key][method] = fn
  end
  return self
end

for _, m in ipairs(METHODS) do
  Router[m:lower()] = function(self, pattern, fn)
    check.arg(1, m:lower(), pattern, "string")
    check.arg(2, m:lower(), fn, "function")
    return self:route(m, pattern, fn)
  end
end

---Adds a route for every method.
function Router:any(pattern, fn)
  check.arg(1, "any", pattern, "string")
  check.arg(2, "any", fn, "function")
  return self:route("*", pattern, fn)
end

---Adds a WebSocket route: fn(ws, req) runs once the handshake is answered;
---the websocket closes (1000) when fn returns, 1011 when it fails. opts are
---req:websocket's (protocols, max_message, ping_interval, idle_timeout,
---permessage_deflate).
---@param pattern string
---@param fn fun(ws: table, req: table): any
---@param opts? table
function Router:websocket(pattern, fn, opts)
  check.arg(1, "websocket", pattern, "string")
  check.arg(2, "websocket", fn, "function")
  check.opt(3, "websocket", opts, "table")
  return self:route("GET", pattern, function(req)
    local ws = req:websocket(opts)
    if not ws then return end
    local ok, err = pcall(fn, ws, req)
    if not ok then
      pcall(ws.close, ws, 1011, "internal error")
      error(err, 0)
    end
  end)
end

---Adds middleware: fn(req, res, next) runs before the route; it calls
---`return next()` to go on, or responds itself to stop.
---@param fn fun(req: table, res: table, next: function): any
function Router:use(fn)
  check.arg(1, "use", fn, "function")
  self.middleware[#self.middleware + 1] = fn
  return self
end

local function pick(by_method, method)
  local fn = by_method[method] or by_method["*"]
  if not fn and method == "HEAD" then fn = by_method.GET end
  return fn
end

local function allowed(methods, into)
  for m in pairs(methods) do
    if m == "*" then
      for _, a in ipairs(METHODS) do into[a] = true end
    else
      into[m] = true
      if m == "GET" then into.HEAD = true end
    end
  end
end

-- Finds the route: fn, params; or nil and the Allow list when only other
-- methods match.
function Router:find(method, path)
  path = normalize(path)
  local by_method = self.static[path]
  local allow = {}
  if by_method then
    local fn = pick(by_method, method)
    if fn then return fn, nil end
    allowed(by_method, allow)
  end
  local path_segs
  for _, r in ipairs(self.dynamic) do
    path_segs = path_segs or split(path)
    local params = match(r.segs, path_segs)
    if params then
      if r.method == method or r.method == "*" or (method == "HEAD" and r.method == "GET") then
        return r.fn, params
      end
      allowed({ [r.method] = true }, allow)
    end
  end
  if next(allow) then
    local list = {}
    for m in pairs(allow) do list[#list + 1] = m end
    table.sort(list)
    return nil, nil, table.concat(list, ", ")
  end
  return nil
end

local function not_found(_, res)
  res:status(404)
  res:send("Not Found\n")
end

---Handles one request (the router is also callable: router(req, res)).
function Router:handle(req, res)
  local fn, params, allow = self:find(req.method, req.path)
  if params then req.params = params end
  if not fn then
    if allow then
      fn = function(_, r)
        r:status(405):header("Allow", allow)
        r:send("Method Not Allowed\n")
      end
    else
      fn = not_found
    end
  end
  local chain = self.middleware
  if #chain == 0 then return fn(req, res) end
  local i = 0
  local function next_step()
    i = i + 1
    local mw = chain[i]
    if mw then return mw(req, res, next_step) end
    return fn(req, res)
  end
  return next_step()
end

Router.__call = Router.handle

return Router
