-- The soak mix (mix.lua) over chats first..last. Arguments: first last.
local common = require("common")
local mix = require("mix")
setup = common.setup
init = mix.init
request = mix.request
done = common.done
