-- The benchmark app: the same two endpoints as every peer in
-- ../shared/bench (GET / plaintext, GET /json encoded per request).
local encode = tycho.json.encode

return function(req, res)
  if req.path == "/json" then
    res:header("Content-Type", "application/json")
    return res:send(encode({ message = "Hello, World!" }))
  end
  res:send("Hello, World!")
end
