-- Apply every alert step of ARGV[1] (a JSON array of step inputs) in order; return the
-- notifications enqueued. Appended to alert_step.lua by llmtap.consumers.alerts.state.
local n = 0
for _, o in ipairs(cjson.decode(ARGV[1])) do n = n + alert_step(o) end
return n
