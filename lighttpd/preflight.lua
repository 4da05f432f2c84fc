-- medimg: OPTIONS (CORS preflight) on the static routes answered with 204
-- (mod_magnet, package lighttpd-modules-lua). lighttpd itself answers OPTIONS
-- on a URL that is not a file with 404 (DESIGN.md §9). Hooked by
-- medimg-routes.conf with magnet.attract-physical-path-to; the CORS headers
-- are added to this answer, as to every other, by cors.lua.

local r = lighty.r
if r.req_attr["request.method"] == "OPTIONS" then
  r.resp_header["Allow"] = "GET, HEAD, OPTIONS"
  return 204
end
return 0
