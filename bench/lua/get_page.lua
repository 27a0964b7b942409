-- GET one fixed path and query, the same request every time (so no request() is needed):
-- a page of a paged listing, its cursor, if any, already in the query string.
-- Arguments: path, e.g. "/chats/?limit=20&cursor=eyJr...".
local common = require("common")
setup = common.setup
done = common.done

function init(args)
  wrk.path = args[1]
end
