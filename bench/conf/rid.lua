-- wrk script: every request carries its own request ID, GET /?rid=<6 digits>, walking the
-- 6-digit range from a per-thread random start (the assignment's model of request IDs).
-- bench/measure.sh appends report.lua (the done() hook) to this file.
-- Per-request Lua makes wrk itself slower: compare rid runs only with each other.
local n = 0
init = function(args)
  math.randomseed(os.time() + tonumber(tostring({}):match("0x(%x+)") or "0", 16) % 100000)
  n = math.random(0, 899999)
end
request = function()
  n = (n + 1) % 900000
  return wrk.format(nil, "/?rid=" .. (100000 + n))
end
