-- wrk script for bench/login-storm: every request is a correct-password login
-- of the admin (gpuhubd rate-limits failed logins only), so each one costs an
-- argon2id verification on gpuhubd's worker pool.
wrk.method = "POST"
wrk.body = '{"account":"admin","password":"benchpass1"}'
wrk.headers["Content-Type"] = "application/json"
