--- tycho.test: helpers for users' own specs. `request(app, {...})` runs one
--- request through the server's real connection code over an in-process
--- socket pair (no port, no network) and returns the parsed response, the
--- way Fastify's `inject` or supertest are used.
local uv = require "luv"
local core = require "tycho.core"
local http_core = require "tycho.http.core"
local http = require "tycho.http"
local json = require "tycho.json"
local check = require "tycho.check"

local M = {}

local function build_request(opts)
  local method = opts.method or "GET"
  local path = opts.path or "/"
  if opts.query then
    local parts = {}
    for k, v in pairs(opts.query) do
      parts[#parts + 1] = k .. "=" .. tostring(v):gsub("[^%w%-_%.~]", function(ch)
        return ("%%%02X"):format(ch:byte())
      end)
    end
    table.sort(parts)
    path = path .. (path:find("?", 1, true) and "&" or "?") .. table.concat(parts, "&")
  end
  local body = opts.body
  local headers = {}
  for k, v in pairs(opts.headers or {}) do headers[k:lower()] = { k, tostring(v) } end
  if type(body) == "table" then
    body = json.encode(body)
    if not headers["content-type"] then
      headers["content-type"] = { "Content-Type", "application/json" }
    end
  end
  local lines = { ("%s %s HTTP/1.1"):format(method, path) }
  if not headers["host"] then lines[#lines + 1] = "Host: test" end
  for _, kv in pairs(headers) do lines[#lines + 1] = kv[1] .. ": " .. kv[2] end
  if body and not headers["content-length"] and not headers["transfer-encoding"] then
    lines[#lines + 1] = "Content-Length: " .. #body
  end
  lines[#lines + 1] = "Connection: close"
  return table.concat(lines, "\r\n") .. "\r\n\r\n" .. (body or "")
end

local function dechunk(data)
  local out, pos = {}, 1
  while true do
    local size_end = data:find("\r\n", pos, true)
    if not size_end then return nil end
    local size = tonumber(data:sub(pos, size_end - 1):match("^%x+"), 16)
    if not size then return nil end
    if size == 0 then return table.concat(out) end
    out[#out + 1] = data:sub(size_end + 2, size_end + 1 + size)
    pos = size_end + 2 + size + 2
  end
end

local function parse_response(raw)
  local head_end = raw:find("\r\n\r\n", 1, true)
  if not head_end then return nil, "incomplete response: " .. raw:sub(1, 200) end
  local head, rest = raw:sub(1, head_end - 1), raw:sub(head_end + 4)
  local status = tonumber(head:match("^HTTP/1%.%d (%d%d%d)"))
  if not status then return nil, "bad status line: " .. head:sub(1, 80) end
  local headers = {}
  for name, value in head:gmatch("\r\n([^:\r\n]+): ([^\r\n]*)") do
    name = name:lower()
    if name == "set-cookie" then -- never joined: a list, one item per line
      headers[name] = headers[name] or {}
      table.insert(headers[name], value)
    else
      headers[name] = headers[name] and (headers[name] .. ", " .. value) or value
    end
  end
  local body = rest
  if (headers["transfer-encoding"] or ""):lower():find("chunked", 1, true) then
    body = dechunk(rest)
    if not body then return nil, "bad chunked body" end
  elseif headers["content-length"] then
    body = rest:sub(1, tonumber(headers["content-length"]))
  end
  return { status = status, headers = headers, body = body, raw = raw }
end

---Runs one request through `app` (a handler function or router) and returns
---`{status=, headers=, body=}` (header names lower-case). Yields.
---Options: method, path, query (table), headers, body (string, or a table
---sent as JSON), limits (as for tycho.http.serve).
---@param app function|table
---@param opts? table
---@return table? response, string? err
function M.request(app, opts)
  local handler = http.as_handler(app)
  if not handler then
    error("bad argument #1 to 'request' (handler function or router expected, got "
      .. type(app) .. ")", 2)
  end
  check.opt(2, "request", opts, "table")
  opts = opts or {}
  local fds, perr = uv.socketpair("stream", 0, { nonblock = true }, { nonblock = true })
  if not fds then return nil, perr end
  local a, b = fds[1], fds[2]
  local server, err = http_core.inject(handler, a, opts.limits)
  if not server then
    uv.fs_close(a)
    uv.fs_close(b)
    return nil, err
  end
  local pipe = uv.new_pipe(false)
  pipe:open(b)
  local parts = {}
  local co, tok = core.token()
  pipe:write(build_request(opts))
  pipe:read_start(function(rerr, chunk)
    if chunk then
      parts[#parts + 1] = chunk
    else
      pipe:read_stop()
      core.wake(co, tok, rerr)
    end
  end)
  local rerr = core.park(function() if not pipe:is_closing() then pipe:close() end end)
  if not pipe:is_closing() then pipe:close() end
  if rerr then return nil, rerr end
  return parse_response(table.concat(parts))
end

return M
