-- Tycho's WebSocket client with permessage-deflate against Node's `ws`
-- server (test_ws_deflate_node.py). WS_PORT is the server's port, WS_PMD
-- our permessage_deflate option as JSON; prints one JSON line: what each
-- side agreed on and whether every echo came back intact.
local tycho = require "tycho"
local json = require "tycho.json"

local pmd = json.decode(assert(os.getenv("WS_PMD")))
local ws = assert(tycho.ws.connect("ws://127.0.0.1:" .. assert(os.getenv("WS_PORT")) .. "/",
  { permessage_deflate = pmd }))
local out = { extensions = ws.extensions or json.null, checks = {} }

local items = {}
for i = 1, 3000 do
  items[i] = { id = i, name = "star " .. i % 97, mag = i * 7 % 13 }
end
local text = json.encode(items)
local bytes = {}
for i = 0, 1024 * 1024 - 1 do bytes[#bytes + 1] = string.char(i * 31 % 251) end
local bin = table.concat(bytes)

local function echo(data, kind)
  assert(ws:send(data, kind))
  local got, gkind = ws:receive()
  out.checks[#out.checks + 1] = got == data and gkind == (kind or "text")
end

for _ = 1, 2 do -- twice: the second round uses the windows the first left
  echo(text)
  echo(bin, "binary")
  echo("small ✓")
  echo("")
end
assert(ws:send("extensions"))
out.node_params = json.decode((ws:receive()))
out.close = ws:close()
print(json.encode(out))
