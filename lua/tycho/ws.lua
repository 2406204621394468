--- tycho.ws: WebSocket (RFC 6455). The framing, pings, timeouts and the
--- connection itself live in C (src/http/websocket.c); this module checks
--- handshakes: the server's `req:websocket{...}` and the client's
--- `tycho.ws.connect(url, {...})`. Both give the same object:
---   ws:receive()                 -> data, "text"|"binary" | nil, "closed", code, reason
---   ws:send(data [, "binary"])   -> true | nil, "closed", code, reason
---   ws:ping([data])              -> seconds until the pong
---   ws:close([code [, reason]])  -> true once the peer answered (or timed out)
---   ws.protocol, ws.state ("connecting", "open", "closing", "closed")
local core = require "tycho.http.websocket"
local check = require "tycho.check"

local M = {}

M.accept_key = core.accept_key

-- Does the comma-separated header value contain token (any case)?
local function has_token(value, token)
  if not value then return false end
  for item in value:gmatch("[^,]+") do
    if item:match("^%s*(.-)%s*$"):lower() == token then return true end
  end
  return false
end

local function list(value)
  local out = {}
  if value then
    for item in value:gmatch("[^,]+") do
      local t = item:match("^%s*(.-)%s*$")
      if t ~= "" then out[#out + 1] = t end
    end
  end
  return out
end

-- The first protocol the client offers that the server supports.
local function choose(offered, supported)
  for _, want in ipairs(list(offered)) do
    for _, have in ipairs(supported) do
      if want == have then return want end
    end
  end
  return nil
end

local function check_opts(n, fname, opts)
  check.opt(n, fname, opts, "table", 2)
  opts = opts or {}
  check.opt(n, fname, opts.protocols, "table", 2)
  local function number(k)
    local v = opts[k]
    if v ~= nil and (type(v) ~= "number" or v < 0) then
      error(("bad argument #%d to '%s' (%s must be a non-negative number)"):format(n, fname, k), 3)
    end
  end
  number("max_message")
  number("ping_interval")
  number("idle_timeout")
  number("timeout")
  return opts
end

-- Why the request is not a valid opening handshake: status, message.
local function bad_handshake(req)
  if not has_token(req:header("upgrade"), "websocket") then
    return 426, "expected Upgrade: websocket"
  end
  if req.method ~= "GET" then return 400, "websocket handshake must be GET" end
  if req.http_version ~= "1.1" then return 400, "websocket handshake needs HTTP/1.1" end
  if not has_token(req:header("connection"), "upgrade") then
    return 400, "expected Connection: upgrade"
  end
  if req:header("sec-websocket-version") ~= "13" then
    return 426, "unsupported Sec-WebSocket-Version (13 expected)"
  end
  local key = req:header("sec-websocket-key")
  if not key or #key ~= 24 or not key:match("^[%w+/]+==$") then
    return 400, "bad Sec-WebSocket-Key"
  end
  return nil
end

---req:websocket{protocols=, max_message=, ping_interval=, idle_timeout=}:
---answers the opening handshake (101) and returns the websocket, or answers
---400/426 and returns nil, message, status.
---@param req table
---@param opts? table
---@return table? ws, string? err, integer? status
function M.upgrade(req, opts)
  opts = check_opts(1, "websocket", opts)
  local status, why = bad_handshake(req)
  if status then
    core.reject(req, status, why)
    return nil, why, status
  end
  local protocol = opts.protocols and choose(req:header("sec-websocket-protocol"), opts.protocols)
  local ws, err = core.accept(req, req:header("sec-websocket-key"), protocol, opts)
  if not ws then return nil, err end
  ws.protocol = protocol
  return ws
end

local function parse_url(url)
  local scheme, rest = url:match("^(wss?)://(.+)$")
  if not scheme then return nil, "unsupported URL (ws:// expected): " .. url end
  if scheme == "wss" then return nil, "wss:// (TLS) is not supported" end
  local hostport, path = rest:match("^([^/]+)(.*)$")
  if not hostport then return nil, "bad URL: " .. url end
  if path == "" then path = "/" end
  local host, port = hostport:match("^%[(.+)%]:(%d+)$")
  if not host then host, port = hostport:match("^%[(.+)%]$"), nil end
  if not host then host, port = hostport:match("^([^:]+):?(%d*)$") end
  if not host then return nil, "bad URL: " .. url end
  port = tonumber(port) or 80
  return { host = host, port = port, path = path, hostport = hostport }
end

local function random_key()
  local bytes = {}
  local rnd = require("luv").random(16)
  for i = 1, 16 do bytes[i] = rnd:sub(i, i) end
  return core.base64(table.concat(bytes))
end

local function request_head(u, key, opts)
  local lines = {
    ("GET %s HTTP/1.1"):format(u.path),
    "Host: " .. u.hostport,
    "Upgrade: websocket",
    "Connection: Upgrade",
    "Sec-WebSocket-Key: " .. key,
    "Sec-WebSocket-Version: 13",
  }
  if opts.protocols and #opts.protocols > 0 then
    lines[#lines + 1] = "Sec-WebSocket-Protocol: " .. table.concat(opts.protocols, ", ")
  end
  for k, v in pairs(opts.headers or {}) do
    local s = tostring(v)
    if s:find("[\r\n]") or tostring(k):find("[\r\n:]") then
      error("bad argument #2 to 'connect' (header " .. tostring(k) .. " contains CR, LF or ':')", 3)
    end
    lines[#lines + 1] = k .. ": " .. s
  end
  return table.concat(lines, "\r\n") .. "\r\n\r\n"
end

-- Checks the server's answer: nil when fine, else the reason.
local function bad_response(head, key, opts)
  local status = tonumber(head:match("^HTTP/1%.%d (%d%d%d)"))
  if status ~= 101 then
    return ("handshake refused: %s"):format(head:match("^([^\r\n]*)") or "?"), nil
  end
  local headers = {}
  for name, value in head:gmatch("\r\n([^:\r\n]+):[ \t]*([^\r\n]*)") do
    headers[name:lower()] = value
  end
  if not has_token(headers.upgrade, "websocket") then return "no Upgrade: websocket in the response" end
  if not has_token(headers.connection, "upgrade") then return "no Connection: upgrade in the response" end
  if headers["sec-websocket-accept"] ~= core.accept_key(key) then
    return "bad Sec-WebSocket-Accept"
  end
  local proto = headers["sec-websocket-protocol"]
  if proto then
    local ok = false
    for _, p in ipairs(opts.protocols or {}) do ok = ok or p == proto end
    if not ok then return "server chose a protocol we did not offer: " .. proto end
  end
  if headers["sec-websocket-extensions"] then return "server chose an extension we did not offer" end
  return nil, proto
end

---Connects to a WebSocket server: `ws://host[:port]/path`. Options:
---protocols (list), headers (table), timeout (seconds for connect and
---handshake, default 10), max_message, ping_interval, idle_timeout.
---@param url string
---@param opts? table
---@return table? ws, string? err, string? code
function M.connect(url, opts)
  check.arg(1, "connect", url, "string")
  opts = check_opts(2, "connect", opts)
  check.opt(2, "connect", opts.headers, "table")
  local u, err = parse_url(url)
  if not u then return nil, err, "EINVAL" end
  local ip = u.host
  local dns = require "tycho.dns"
  if not dns.is_ip(ip) then
    local addrs, derr, code = dns.resolve(ip)
    if not addrs then return nil, derr, code end
    ip = addrs[1]
  end
  local key = random_key()
  local ws, head_or_err, code = core.connect(ip, u.port, request_head(u, key, opts),
    opts.timeout or 10, opts)
  if not ws then return nil, head_or_err, code end
  local why, proto = bad_response(head_or_err, key, opts)
  if why then
    ws:_abort()
    return nil, why, "EPROTO"
  end
  ws.protocol = proto
  ws:_open()
  return ws
end

return M
