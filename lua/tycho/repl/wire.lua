--- tycho.repl.wire: the protocol between `tycho attach` and the REPL
--- server, one JSON object per line over a Unix socket.
---   client -> server: {t="line", s=TEXT}   a line the user typed
---                     {t="int"}            Ctrl-C
---   server -> client: {t="hello", pid=N, version=V}
---                     {t="out", s=TEXT}    results and print() output
---                     {t="err", s=TEXT}    error messages
---                     {t="prompt", s=P}    ready for the next line
local json = require "tycho.json"

local M = {}

M.MAX_LINE = 1024 * 1024 -- a longer message ends the connection

---Encodes one message as a line.
---@param msg table
---@return string
function M.encode(msg)
  return json.encode(msg) .. "\n"
end

---Returns feed(data) -> messages, err: splits the byte stream into
---decoded messages; err is set when the peer sent garbage or a line
---longer than MAX_LINE.
---@return fun(data: string): table[], string?
function M.splitter()
  local buf = ""
  return function(data)
    buf = buf .. data
    local out = {}
    while true do
      local i = buf:find("\n", 1, true)
      if not i then break end
      local msg = json.decode(buf:sub(1, i - 1))
      buf = buf:sub(i + 1)
      if type(msg) ~= "table" or type(msg.t) ~= "string" then
        return out, "bad message"
      end
      out[#out + 1] = msg
    end
    if #buf > M.MAX_LINE then return out, "message too long" end
    return out
  end
end

return M
