-- POST /chats/{id}/messages/, with id drawn uniformly from first..last.
-- Arguments: first last. With first == last, every post goes to that one chat.
local common = require("common")
setup = common.setup
done = common.done

local headers = common.headers({ ["Content-Type"] = "application/json" })
local body = '{"text": "A benchmark message, about as long as a short chat line."}'

function init(args)
  first = tonumber(args[1])
  last = tonumber(args[2])
  math.randomseed(2000 + tid)
end

function request()
  return wrk.format("POST", "/chats/" .. math.random(first, last) .. "/messages/", headers, body)
end
