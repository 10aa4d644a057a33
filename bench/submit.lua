-- wrk script for bench/task-submissions: POST /api/task/request, 1 GPU for
-- an hour, on the machines of MACHINES (space-separated) in turn, in the
-- container "bench", as the user whose token is TOKEN.
local token = os.getenv("TOKEN")
local machines = {}
for m in string.gmatch(os.getenv("MACHINES"), "%S+") do machines[#machines + 1] = m end
local n = 0

request = function()
  n = n + 1
  local body = '{"machine_id":"' .. machines[(n % #machines) + 1] ..
      '","containername":"bench","command":"sleep 3600","duration":"1h","gpu_count":1}'
  return wrk.format("POST", "/api/task/request",
    {["Authorization"] = "Bearer " .. token, ["Content-Type"] = "application/json"}, body)
end
