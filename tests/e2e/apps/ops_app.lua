-- The app of the operations e2e tests (workers, access log, metrics).
local uv = tycho.uv
local app = tycho.http.router()
app:get("/", function() return "hello\n" end)
app:get("/pid", function() return tostring(math.tointeger(uv.os_getpid())) end)
app:get("/slow", function(req, res)
  io.stderr:write(("slow request started in %d\n"):format(uv.os_getpid()))
  io.stderr:flush()
  tycho.sleep(tonumber(req.query.s or "1"))
  res:send("slow done")
end)
app:get("/fail", function() return 503, {}, "unavailable" end)
app:get("/metrics", tycho.http.metrics())
app:get("/livez", tycho.http.live())
app:get("/readyz", tycho.http.ready())
return app
