-- POST /chats/ with a JSON title: the same request every time, so no request() is needed.
local common = require("common")
setup = common.setup
done = common.done

wrk.method = "POST"
wrk.path = "/chats/"
wrk.headers["Content-Type"] = "application/json"
wrk.body = '{"title": "  Benchmark chat  "}'
