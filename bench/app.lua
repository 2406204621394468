-- The benchmark app: the same two endpoints as every peer in
-- ../shared/bench (GET / plaintext, GET /json encoded per request).
-- /json uses res:json, the documented way to answer JSON (nginx+Lua's
-- peer does cjson.encode under `default_type application/json`). The two
-- other ways are here for bench/callgrind.py: /json/encode spells it out
-- with res:header + tycho.json.encode + res:send, /json/return returns
-- the table.
local encode = tycho.json.encode

return function(req, res)
  local path = req.path
  if path == "/json" then
    return res:json({ message = "Hello, World!" })
  elseif path == "/json/encode" then
    res:header("Content-Type", "application/json")
    return res:send(encode({ message = "Hello, World!" }))
  elseif path == "/json/return" then
    return { message = "Hello, World!" }
  end
  res:send("Hello, World!")
end
