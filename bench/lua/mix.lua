-- The soak mix over chats first..last, for mixed.lua and mixed_statuses.lua: 70% GET
-- limit=20, 10% GET limit=100, 20% POST message (GET 80%, POST 20%). Arguments: first last.
local common = require("common")
local M = {}

local headers = common.headers({ ["Content-Type"] = "application/json" })
local body = '{"text": "A soak message, about as long as a short chat line."}'
local first, last

function M.init(args)
  first = tonumber(args[1])
  last = tonumber(args[2])
  math.randomseed(3000 + tid)
end

function M.request()
  local chat = math.random(first, last)
  local draw = math.random()
  if draw < 0.7 then
    return wrk.format("GET", "/chats/" .. chat .. "?limit=20")
  elseif draw < 0.8 then
    return wrk.format("GET", "/chats/" .. chat .. "?limit=100")
  end
  return wrk.format("POST", "/chats/" .. chat .. "/messages/", headers, body)
end

return M
