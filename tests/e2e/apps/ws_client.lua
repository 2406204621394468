-- Tycho's WebSocket client against Node's `ws` server (test_ws_node.py).
-- The server's port comes in WS_PORT; one line per check goes to stdout.
local tycho = require "tycho"
local json = require "tycho.json"

local base = "ws://127.0.0.1:" .. assert(os.getenv("WS_PORT"))
local function say(k, v) print(k .. "=" .. json.encode(v)) end

local ws = assert(tycho.ws.connect(base .. "/echo", { headers = { ["X-Tycho-Test"] = "yes" } }))
say("state", ws.state)
assert(ws:send("hello node"))
say("text", { ws:receive() })
assert(ws:send("\0\1\2\255", "binary"))
local data, kind = ws:receive()
say("binary", { { data:byte(1, -1) }, kind })
local big = ("0123456789abcdef"):rep(64 * 1024) -- 1 MiB
assert(ws:send(big, "binary"))
data = ws:receive()
say("big", { #data, data == big })
assert(ws:send("headers"))
say("custom_header", json.decode((ws:receive()))["x-tycho-test"])
say("ping", type(ws:ping("tycho")) == "number")
assert(ws:send("close 4200 node closes"))
say("server_close", { ws:receive() })
say("send_after_close", { ws:send("late") })

local p = assert(tycho.ws.connect(base .. "/protocol", { protocols = { "xml.v9", "json.v1" } }))
say("protocol", { p.protocol, (p:receive()) })
say("client_close", p:close(4300, "tycho closes"))
say("after_client_close", { p:receive() })

local refused, err, code = tycho.ws.connect("ws://127.0.0.1:1/x", { timeout = 2 })
say("refused", { refused == nil, code })
local bad, berr = tycho.ws.connect("http://127.0.0.1:1/x")
say("bad_url", { bad == nil, berr })
