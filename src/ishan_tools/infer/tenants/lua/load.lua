-- ARGV: prefix, coordinator, tenant. -> {sessions on live coordinators, tokens in the window}
local tokens = window(ARGV[3], now_s(), false)
return {live_sessions(ARGV[3], false), tokens}
