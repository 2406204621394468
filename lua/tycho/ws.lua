--- tycho.ws: WebSocket (RFC 6455). The framing, pings, timeouts and the
--- connection itself live in C (src/http/websocket.c); this module checks
--- handshakes: the server's `req:websocket{...}` and the client's
--- `tycho.ws.connect(url, {...})`. Both give the same object:
---   ws:receive()                 -> data, "text"|"binary" | nil, "closed", code, reason
---   ws:send(data [, "binary"])   -> true | nil, "closed", code, reason
---   ws:ping([data])              -> seconds until the pong
---   ws:close([code [, reason]])  -> true once the peer answered (or timed out)
---   ws.protocol, ws.state ("connecting", "open", "closing", "closed")
---   ws.extensions ("permessage-deflate; ..." when compression was agreed on)
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

-- permessage-deflate (RFC 7692) negotiation. The compression itself is C
-- (src/http/ws_deflate.c); here we read and write Sec-WebSocket-Extensions
-- and turn the agreed parameters into what C needs, from our side:
-- our_bits/peer_bits (LZ77 windows), our_reset/peer_reset (no context
-- takeover), level, threshold.

local PMD_KEYS = {
  level = true, threshold = true, max_window_bits = true,
  server_no_context_takeover = true, client_no_context_takeover = true,
}

-- Checks a permessage_deflate option: nil when off, else a table.
local function check_pmd(n, fname, v, default)
  if v == nil then v = default end
  if v == false then return nil end
  if v == true then v = {} end
  local function bad(msg) -- check_opts raises it again at the caller's line
    error(("bad argument #%d to '%s' (permessage_deflate%s)"):format(n, fname, msg), 0)
  end
  if type(v) ~= "table" then bad(" must be a boolean or a table") end
  for k in pairs(v) do
    if not PMD_KEYS[k] then bad((": unknown option '%s'"):format(tostring(k))) end
  end
  local function int(k, lo, hi)
    local x = v[k]
    if x ~= nil and (math.type(x) ~= "integer" or x < lo or (hi and x > hi)) then
      bad(("." .. k .. " must be an integer %d..%s"):format(lo, hi or "")) end
  end
  int("level", 0, 9)
  int("threshold", 0, 0x7fffffff)
  int("max_window_bits", 8, 15)
  for _, k in ipairs { "server_no_context_takeover", "client_no_context_takeover" } do
    if v[k] ~= nil and type(v[k]) ~= "boolean" then bad("." .. k .. " must be a boolean") end
  end
  return {
    level = v.level or 6,
    threshold = v.threshold or 1024,
    max_window_bits = v.max_window_bits or 15,
    server_no_context_takeover = v.server_no_context_takeover or false,
    client_no_context_takeover = v.client_no_context_takeover or false,
  }
end

-- Splits s at the separator sep outside quoted strings; nil when a quote
-- is left open.
local function split_unquoted(s, sep)
  local out, start, i, quoted = {}, 1, 1, false
  while i <= #s do
    local c = s:sub(i, i)
    if quoted and c == "\\" then
      i = i + 1
    elseif c == '"' then
      quoted = not quoted
    elseif c == sep and not quoted then
      out[#out + 1] = s:sub(start, i - 1)
      start = i + 1
    end
    i = i + 1
  end
  if quoted then return nil end
  out[#out + 1] = s:sub(start)
  return out
end

local TOKEN = "^[!#$%%&'*+%-.^_`|~%w]+$"

-- One parameter "name" or "name=value" (value a token or quoted string):
-- name, value (true when none), or nil when malformed.
local function parse_param(p)
  p = p:match("^%s*(.-)%s*$")
  local name, value = p:match("^([^=]-)%s*=%s*(.*)$")
  if not name then
    if p:match(TOKEN) then return p:lower(), true end
    return nil
  end
  if not name:match(TOKEN) then return nil end
  local q = value:match('^"(.*)"$')
  if q then
    value = q:gsub("\\(.)", "%1")
  elseif not value:match(TOKEN) then
    return nil
  end
  if not value:match(TOKEN) then return nil end -- RFC 6455 9.1: a token once unquoted
  return name:lower(), value
end

-- Sec-WebSocket-Extensions -> list of { name = , params = {k = v} | false }
-- (params false: malformed or a parameter repeated), or nil when a quoted
-- string is left open.
local function parse_extensions(header)
  local out, items = {}, split_unquoted(header or "", ",")
  if not items then return nil end
  for _, item in ipairs(items) do
    if item:match("%S") then
      local parts = split_unquoted(item, ";")
      local name = parts[1]:match("^%s*(.-)%s*$")
      local params = name:match(TOKEN) and {} or false
      for i = 2, #parts do
        local k, v = parse_param(parts[i])
        if not k or not params or params[k] ~= nil then
          params = false
        else
          params[k] = v
        end
      end
      out[#out + 1] = { name = name:lower(), params = params }
    end
  end
  return out
end

-- A window-bits value: 8..15 written without leading zeros, else nil.
local function bits(v)
  if type(v) ~= "string" or not v:match("^[1-9]%d?$") then return nil end
  local n = tonumber(v)
  return n >= 8 and n <= 15 and n or nil
end

-- A permessage-deflate offer's parameters, checked: table or nil.
local function valid_offer(params)
  if not params then return nil end
  local o = {}
  for k, v in pairs(params) do
    if k == "server_no_context_takeover" or k == "client_no_context_takeover" then
      if v ~= true then return nil end
      o[k] = true
    elseif k == "server_max_window_bits" then
      o[k] = bits(v)
      if not o[k] then return nil end
    elseif k == "client_max_window_bits" then
      o[k] = v == true or bits(v)
      if not o[k] then return nil end
    else
      return nil
    end
  end
  return o
end

-- Server: the first acceptable permessage-deflate offer in the request ->
-- the parameters for C (with `response`, our header value), or nil.
local function pmd_accept(header, cfg)
  for _, ext in ipairs(parse_extensions(header) or {}) do
    local o = ext.name == "permessage-deflate" and valid_offer(ext.params)
    if o then
      local d = { level = cfg.level, threshold = cfg.threshold }
      local resp = { "permessage-deflate" }
      d.our_reset = o.server_no_context_takeover or cfg.server_no_context_takeover
      if d.our_reset then resp[#resp + 1] = "server_no_context_takeover" end
      d.peer_reset = o.client_no_context_takeover or cfg.client_no_context_takeover
      if d.peer_reset then resp[#resp + 1] = "client_no_context_takeover" end
      d.our_bits = math.min(cfg.max_window_bits, o.server_max_window_bits or 15)
      if o.server_max_window_bits or d.our_bits < 15 then
        resp[#resp + 1] = "server_max_window_bits=" .. d.our_bits
      end
      d.peer_bits = 15 -- unless the client lets us choose
      local hint = o.client_max_window_bits
      if hint then
        d.peer_bits = math.min(cfg.max_window_bits, hint == true and 15 or hint)
        if d.peer_bits < 15 then resp[#resp + 1] = "client_max_window_bits=" .. d.peer_bits end
      end
      d.response = table.concat(resp, "; ")
      return d
    end
  end
  return nil
end

-- Client: our offer.
local function pmd_offer(cfg)
  local parts = { "permessage-deflate" }
  if cfg.server_no_context_takeover then parts[#parts + 1] = "server_no_context_takeover" end
  if cfg.client_no_context_takeover then parts[#parts + 1] = "client_no_context_takeover" end
  if cfg.max_window_bits < 15 then
    parts[#parts + 1] = "server_max_window_bits=" .. cfg.max_window_bits
    parts[#parts + 1] = "client_max_window_bits=" .. cfg.max_window_bits
  else
    parts[#parts + 1] = "client_max_window_bits"
  end
  return table.concat(parts, "; ")
end

-- Client: checks the server's Sec-WebSocket-Extensions against our offer
-- (RFC 7692 section 5: anything we did not offer fails the connection).
-- -> parameters for C | nil (no extension) | false, why.
local function pmd_response(header, cfg)
  if not header then return nil end
  local exts = parse_extensions(header)
  if not exts then return false, "malformed Sec-WebSocket-Extensions: " .. header end
  if #exts == 0 then return nil end
  if not cfg or #exts ~= 1 or exts[1].name ~= "permessage-deflate" then
    return false, "server chose an extension we did not offer: " .. header
  end
  local p = exts[1].params
  if not p then return false, "malformed permessage-deflate response: " .. header end
  local d = { level = cfg.level, threshold = cfg.threshold, our_bits = cfg.max_window_bits, peer_bits = 15 }
  for k, v in pairs(p) do
    if k == "server_no_context_takeover" and v == true then
      d.peer_reset = true
    elseif k == "client_no_context_takeover" and v == true then
      d.our_reset = true
    elseif k == "server_max_window_bits" and bits(v) and bits(v) <= cfg.max_window_bits then
      d.peer_bits = bits(v)
    elseif k == "client_max_window_bits" and bits(v) and bits(v) <= cfg.max_window_bits then
      d.our_bits = bits(v)
    else
      return false, ("bad permessage-deflate parameter in the response: %s"):format(
        v == true and k or k .. "=" .. tostring(v))
    end
  end
  if cfg.server_no_context_takeover and not d.peer_reset then
    return false, "server ignored server_no_context_takeover"
  end
  if cfg.max_window_bits < 15 and not p.server_max_window_bits then
    return false, "server ignored server_max_window_bits"
  end
  d.our_reset = d.our_reset or cfg.client_no_context_takeover
  d.response = header
  return d
end

local function check_opts(n, fname, opts)
  check.opt(n, fname, opts, "table", 3)
  opts = opts or {}
  check.opt(n, fname, opts.protocols, "table", 3)
  local function number(k)
    local v = opts[k]
    if v ~= nil and (type(v) ~= "number" or v < 0) then
      error(("bad argument #%d to '%s' (%s must be a non-negative number)"):format(n, fname, k), 4)
    end
  end
  number("max_message")
  number("ping_interval")
  number("idle_timeout")
  number("timeout")
  local ok, pmd = pcall(check_pmd, n, fname, opts.permessage_deflate, fname == "connect")
  if not ok then error(pmd, 3) end
  return opts, pmd
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

---req:websocket{protocols=, max_message=, ping_interval=, idle_timeout=,
---permessage_deflate=}: answers the opening handshake (101) and returns the
---websocket, or answers 400/426 and returns nil, message, status.
---@param req table
---@param opts? table
---@return table? ws, string? err, integer? status
function M.upgrade(req, opts)
  local pmd
  opts, pmd = check_opts(1, "websocket", opts)
  local status, why = bad_handshake(req)
  if status then
    core.reject(req, status, why)
    return nil, why, status
  end
  local protocol = opts.protocols and choose(req:header("sec-websocket-protocol"), opts.protocols)
  local deflate = pmd and pmd_accept(req:header("sec-websocket-extensions"), pmd)
  local ws, err = core.accept(req, req:header("sec-websocket-key"), protocol, opts, deflate or nil)
  if not ws then return nil, err end
  ws.protocol = protocol
  ws.extensions = deflate and deflate.response or nil
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

local function request_head(u, key, opts, pmd)
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
  if pmd then lines[#lines + 1] = "Sec-WebSocket-Extensions: " .. pmd_offer(pmd) end
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
local function bad_response(head, key, opts, pmd)
  local status = tonumber(head:match("^HTTP/1%.%d (%d%d%d)"))
  if status ~= 101 then
    return ("handshake refused: %s"):format(head:match("^([^\r\n]*)") or "?"), nil
  end
  local headers = {}
  for name, value in head:gmatch("\r\n([^:\r\n]+):[ \t]*([^\r\n]*)") do
    name = name:lower()
    headers[name] = headers[name] and headers[name] .. ", " .. value or value
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
  local deflate, why = pmd_response(headers["sec-websocket-extensions"], pmd)
  if deflate == false then return why end
  return nil, proto, deflate
end

---Connects to a WebSocket server: `ws://host[:port]/path`. Options:
---protocols (list), headers (table), timeout (seconds for connect and
---handshake, default 10), max_message, ping_interval, idle_timeout,
---permessage_deflate (default true: offered).
---@param url string
---@param opts? table
---@return table? ws, string? err, string? code
function M.connect(url, opts)
  check.arg(1, "connect", url, "string")
  local pmd
  opts, pmd = check_opts(2, "connect", opts)
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
  local ws, head_or_err, code = core.connect(ip, u.port, request_head(u, key, opts, pmd),
    opts.timeout or 10, opts)
  if not ws then return nil, head_or_err, code end
  local why, proto, deflate = bad_response(head_or_err, key, opts, pmd)
  if why then
    ws:_abort()
    return nil, why, "EPROTO"
  end
  ws.protocol = proto
  ws.extensions = deflate and deflate.response or nil
  ws:_open(deflate)
  return ws
end

return M
