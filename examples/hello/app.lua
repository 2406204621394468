-- The smallest Tycho app: `tycho run examples/hello/app.lua`, then
-- curl http://127.0.0.1:8080/ and curl http://127.0.0.1:8080/json
local app = tycho.http.router()

app:get("/", function(req, res)
  res:send("Hello, World!")
end)

app:get("/json", function(req, res)
  res:json({ message = "Hello, World!" })
end)

app:get("/hello/:name", function(req)
  return { hello = req.params.name }
end)

return app
