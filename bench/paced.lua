-- wrk script for bench/login-storm's paced probe: each connection waits
-- PROBE_DELAY_MS milliseconds before sending its next request, so the probe
-- offers a modest load instead of saturating the server. wrk measures latency
-- from send to answer, so the pause is not counted.
local ms = tonumber(os.getenv("PROBE_DELAY_MS") or "5")

function delay()
  return ms
end
