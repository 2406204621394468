-- The app the HTTP end-to-end tests talk to.
local app = tycho.http.router()
local calls = 0

app:use(function(req, res, nxt)
  calls = calls + 1
  return nxt()
end)

app:get("/", function(req, res) res:send("Hello, World!") end)
app:get("/json", function(req, res) res:json({ message = "Hello, World!" }) end)
app:get("/calls", function() return tostring(calls) end)
app:post("/echo", function(req, res)
  res:header("Content-Type", req:header("content-type") or "application/octet-stream")
  res:send(req:body())
end)
app:post("/count", function(req)
  local n = 0
  for chunk in req:chunks() do n = n + #chunk end
  return tostring(n)
end)
app:get("/slow", function(req)
  tycho.sleep(tonumber(req.query.s) or 0.5)
  return "slow done"
end)
app:get("/order/:n", function(req)
  tycho.sleep((5 - tonumber(req.params.n)) * 0.01)
  return "order " .. req.params.n
end)
app:get("/stream", function(req, res)
  for i = 1, 5 do
    res:write(("line %d\n"):format(i))
    tycho.sleep(0.001)
  end
  res:finish()
end)
app:get("/fail", function() error("handler exploded") end)
app:get("/nothing", function() end)

-- A request that sees its client vanish is cancelled: it records that.
local cancelled = 0
app:get("/hang", function()
  local ok, err = pcall(tycho.sleep, 30)
  if not ok then cancelled = cancelled + 1 end
  error(err, 0)
end)
app:get("/cancelled", function() return tostring(cancelled) end)

return app
