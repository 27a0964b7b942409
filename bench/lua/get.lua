-- GET /chats/{id}?limit=N, with id drawn uniformly from first..last.
-- Arguments: first last [limit=20]. With first == last, every request reads that one chat.
local common = require("common")
setup = common.setup
done = common.done

function init(args)
  first = tonumber(args[1])
  last = tonumber(args[2])
  limit = args[3] or "20"
  math.randomseed(1000 + tid)
end

function request()
  return wrk.format("GET", "/chats/" .. math.random(first, last) .. "?limit=" .. limit)
end
