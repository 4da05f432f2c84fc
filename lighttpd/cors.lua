-- medimg: CORS (and nosniff) for lighttpd (mod_magnet, package lighttpd-modules-lua).
--
-- setenv cannot echo a request's Origin, so the allow-list is applied here.
-- The same script is hooked twice by medimg-routes.conf:
--   magnet.attract-physical-path-to   static URLs: answers OPTIONS preflights (204)
--   magnet.attract-response-start-to  every answer: adds the CORS headers unless
--                                     the answer already carries them (the
--                                     medimg-fcgi worker sets its own)
-- Allow-list, first found: request environment MEDIMG_CORS_ORIGINS (set with
-- setenv.set-environment by medimg-routes.conf), the lighttpd process
-- environment, else "*". Origins are separated by spaces or commas; "*" means
-- any origin, answered without credentials (browsers refuse "*" together with
-- Access-Control-Allow-Credentials); an empty list sends no CORS headers.

local r = lighty.r
local method = r.req_attr["request.method"]

-- setenv's header is missing from answers refused before mod_setenv runs
-- (url.access-deny): add it here, on every answer.
if r.resp_header["X-Content-Type-Options"] == nil then
  r.resp_header["X-Content-Type-Options"] = "nosniff"
end

-- Already decided: the worker answered, or the preflight stage did.
if r.resp_header["Access-Control-Allow-Origin"] then
  return 0
end

local origins = r.req_env["MEDIMG_CORS_ORIGINS"] or os.getenv("MEDIMG_CORS_ORIGINS") or "*"
local origin = r.req_header["Origin"]

local any = false
local allowed = nil
local listed = false
for o in string.gmatch(origins, "[^%s,]+") do
  listed = true
  if o == "*" then
    any = true
  elseif origin and o == origin then
    allowed = origin
  end
end

local function append_vary(value)
  local vary = r.resp_header["Vary"]
  if vary == nil or vary == "" then
    r.resp_header["Vary"] = value
  elseif not string.find(string.lower(vary), string.lower(value), 1, true) then
    r.resp_header["Vary"] = vary .. ", " .. value
  end
end

local granted = false
if allowed then
  -- An explicitly listed origin wins over "*": it may send credentials.
  r.resp_header["Access-Control-Allow-Origin"] = allowed
  r.resp_header["Access-Control-Allow-Credentials"] = "true"
  granted = true
elseif any then
  r.resp_header["Access-Control-Allow-Origin"] = "*"
  granted = true
end
if listed and not (any and not allowed) then
  -- The answer depends on Origin: caches must keep one copy per origin.
  append_vary("Origin")
end
if granted then
  r.resp_header["Access-Control-Expose-Headers"] =
    "Content-Length, Content-Range, Accept-Ranges, ETag, Last-Modified, Content-Disposition"
end

if method == "OPTIONS" then
  r.resp_header["Allow"] = "GET, HEAD, OPTIONS"
  if granted and origin then
    r.resp_header["Access-Control-Allow-Methods"] = "GET, HEAD, OPTIONS"
    r.resp_header["Access-Control-Allow-Headers"] =
      "Range, If-None-Match, If-Modified-Since, If-Range, Authorization, Content-Type"
    r.resp_header["Access-Control-Max-Age"] = "600"
  end
  return 204
end
return 0
