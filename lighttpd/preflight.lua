-- medimg: methods on the static routes (mod_magnet, package
-- lighttpd-modules-lua). OPTIONS (CORS preflight) is answered with 204:
-- lighttpd itself answers OPTIONS on a URL that is not a file with 404
-- (docs/ARCHITECTURE.md). Methods other than GET, HEAD and OPTIONS are 405 with
-- Allow, as on Apache and the worker's routes (lighttpd's own answer is
-- 501). Hooked by medimg-routes.conf with magnet.attract-physical-path-to;
-- the CORS headers are added to these answers, as to every other, by
-- cors.lua.

local r = lighty.r
local method = r.req_attr["request.method"]
if method == "GET" or method == "HEAD" then
  return 0
end
r.resp_header["Allow"] = "GET, HEAD, OPTIONS"
if method == "OPTIONS" then
  return 204
end
-- lighttpd clears the headers of a refusal before sending it: cors.lua adds
-- Allow back.
r.req_env["MEDIMG_ALLOW"] = "GET, HEAD, OPTIONS"
return 405
