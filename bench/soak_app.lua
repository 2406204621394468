-- soak_app.lua: the app bench/soak.py hammers. A mix of answers: small
-- text, handler errors (500), a large response, a large upload read in
-- full, JSON with a query, and a streamed response.
local big = ("s"):rep(256 * 1024)
return function(req, res)
  local p = req.path
  if p == "/" then return "ok" end
  if p == "/error" then error("soak: a handler error") end
  if p == "/big" then return big end
  if p == "/upload" then return "got " .. #(req:body() or "") end
  if p == "/json" then return { q = req.query, host = req.headers.host } end
  if p == "/stream" then
    for i = 1, 4 do res:write(("chunk %d\n"):format(i)) end
    return
  end
  return 404, {}, "not found"
end
