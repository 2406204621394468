--- tycho.http: the HTTP/1.1 server (C, src/http/), the router, static files
--- and the client. `serve{...}` runs each request as its own task.
local core = require "tycho.http.core"
local json = require "tycho.json"
local check = require "tycho.check"

local M = {}

local res_methods = core.response_methods
local req_methods = core.request_methods
local decode = json.decode

-- res:json(value[, status]) is in C (src/http/message.c), like res:send.
require "tycho.http.cookie" -- res:cookie, res:clear_cookie
require "tycho.http.form" -- req:form, req:parts

---Redirects to `location` (status 302 unless given).
---@param location string
---@param status? integer
function res_methods.redirect(res, location, status)
  check.arg(1, "redirect", location, "string")
  res:status(status or 302)
  res:header("Location", location)
  res:send("")
end

---Decodes the body as JSON: the value, or nil and a message.
---@return any value, string? err
function req_methods.json(req)
  local body, err = req:body()
  if not body then return nil, err end
  local value, derr = decode(body)
  if derr then return nil, "request body is not valid JSON: " .. derr end
  return value
end

---Upgrades to a WebSocket (see tycho.ws): the ws, or nil, message, status.
function req_methods.websocket(req, opts)
  return require("tycho.ws").upgrade(req, opts)
end

---Starts a Server-Sent Events stream (see tycho.http.sse).
function res_methods.sse(res, opts)
  return require("tycho.http.sse").new(res, opts)
end

-- A handler may answer by returning: body (string: text; table: JSON) or
-- status, headers, body.
core.set_return_hook(function(res, a, b, c)
  local ta = type(a)
  if ta == "table" then return res:json(a) end
  if ta == "number" then
    if math.type(a) ~= "integer" or a < 100 or a > 999 then
      error(("handler returned the number %s, which is not an HTTP status: return a string "
        .. "(tostring(n)) for a text body, or status, headers, body"):format(a), 0)
    end
    res:status(a)
    if type(b) == "table" then
      for k, v in pairs(b) do res:header(k, v) end
    end
    if type(c) == "table" then return res:json(c) end
    return res:send(c ~= nil and tostring(c) or "")
  end
  if ta == "string" then return res:send(a) end
  error(("handler returned a %s: respond with res:send(), or return a string, a table, "
    .. "or status, headers, body"):format(ta), 0)
end)

local function as_function(handler)
  if type(handler) == "function" then return handler end
  local mt = getmetatable(handler)
  if mt and mt.__call then
    return function(req, res) return handler(req, res) end
  end
  return nil
end
M.as_handler = as_function

---Starts an HTTP server. Options: handler (function or router), host
---(default "127.0.0.1"), port (default 8080, 0 = any free port), backlog,
---and limits: max_header_bytes, max_headers, max_body_bytes,
---max_connections, header_timeout, keepalive_timeout, body_timeout
---(seconds), cpu_limit_ms, memory_limit_mb (docs/security.md).
---@param opts table
---@return table? server with .port, :close(), :wait_closed(), :set_handler(fn)
---@return string? err
---@return string? code
function M.serve(opts)
  check.arg(1, "serve", opts, "table")
  local handler = as_function(opts.handler)
  if not handler then
    error("bad argument #1 to 'serve' (function or router expected at field 'handler', got "
      .. type(opts.handler) .. ")", 2)
  end
  local o = {}
  for k, v in pairs(opts) do o[k] = v end
  o.handler = handler
  M.serves = (M.serves or 0) + 1 -- `tycho run` warns when a router is built, not served
  return core.listen(o)
end

---A new router: app:get/post/put/patch/delete/head/options/any(pattern, fn),
---app:use(middleware). Return it from an app script to serve it.
function M.router()
  return require("tycho.http.router").new()
end

---A handler serving files under `dir`.
function M.static(dir, opts)
  return require("tycho.http.static").new(dir, opts)
end

---CORS middleware for app:use (see tycho.http.cors.new).
function M.cors(opts)
  return require("tycho.http.cors").new(opts)
end

M.url_decode = core.url_decode
M.query_parse = core.query_parse

-- The client lives in its own module, loaded on first use. Not cached
-- here: whoever requires "tycho.http.client" (a spec after busted reset
-- package.loaded, say) then shares its pool and stats with http.get.
setmetatable(M, {
  __index = function(_, k)
    if k == "request" or k == "get" then return require("tycho.http.client")[k] end
    if k == "metrics" then return require("tycho.http.metrics").handler end
    if k == "live" or k == "ready" then return require("tycho.http.health")[k] end
  end,
})

return M
