-- medimg: CORS (and nosniff) for lighttpd (mod_magnet, package lighttpd-modules-lua).
--
-- The web server owns CORS in every medimg deployment (docs/SECURITY.md,
-- "CORS"): this script adds the headers to every answer, static, dynamic and
-- errors, and removes any a backend sent. Hooked by medimg-routes.conf with
-- magnet.attract-response-start-to. setenv cannot echo a request's Origin, so
-- the allow-list is applied here (docs/ARCHITECTURE.md).
--
-- Allow-list: request environment MEDIMG_CORS_ORIGINS (set with
-- setenv.set-environment by medimg-routes.conf from var.medimg_cors_origins).
-- Origins are separated by spaces or commas. Empty or unset (the default):
-- no CORS headers at all. "*": any origin, answered without credentials
-- (browsers refuse "*" together with Access-Control-Allow-Credentials), on
-- every answer. A list: an allowed Origin is echoed with
-- Access-Control-Allow-Credentials: true, and every answer carries
-- Vary: Origin; other origins get no CORS headers.
--
-- The header values come from one list, apache/cors-headers.conf (Define
-- lines, also Included by apache/medimg.conf), at MEDIMG_CORS_HEADERS (set
-- by medimg-routes.conf); it is read once per lighttpd process.

local r = lighty.r

-- setenv's header is missing from answers refused before mod_setenv runs:
-- add it here, on every answer.
if r.resp_header["X-Content-Type-Options"] == nil then
  r.resp_header["X-Content-Type-Options"] = "nosniff"
end

-- Headers of the refusals preflight.lua (405: Allow) and stat-errors.lua
-- (416: Content-Range) make: lighttpd clears a refusal's headers before
-- this hook runs, so they are passed in the request environment.
for header, name in pairs({ ["Allow"] = "MEDIMG_ALLOW", ["Content-Range"] = "MEDIMG_CONTENT_RANGE" }) do
  local value = r.req_env[name]
  if value and r.resp_header[header] == nil then r.resp_header[header] = value end
end

local names = {
  "Access-Control-Allow-Origin", "Access-Control-Allow-Credentials",
  "Access-Control-Expose-Headers", "Access-Control-Allow-Methods",
  "Access-Control-Allow-Headers", "Access-Control-Max-Age",
}
for _, name in ipairs(names) do
  if r.resp_header[name] ~= nil then r.resp_header[name] = nil end
end

local origins = r.req_env["MEDIMG_CORS_ORIGINS"] or ""
local any, listed, allowed = false, false, nil
local origin = r.req_header["Origin"]
for o in string.gmatch(origins, "[^%s,]+") do
  if o == "*" then
    any = true
  else
    listed = true
    if origin and o == origin then allowed = origin end
  end
end
if not any and not listed then
  return 0
end

-- The one list of values, parsed once and kept for the process's lifetime
-- (package.loaded survives between requests; globals do not).
local function header_values()
  local path = r.req_env["MEDIMG_CORS_HEADERS"]
  local key = "medimg.cors-headers:" .. tostring(path)
  local values = package.loaded[key]
  if values then return values end
  local f = path and io.open(path, "rb")
  if not f then
    error("cors.lua: cannot read the CORS header list " .. tostring(path))
  end
  values = {}
  for line in f:lines() do
    local name, value = string.match(line, '^%s*Define%s+MEDIMG_CORS_([%u_]+)%s+"([^"]*)"%s*$')
    if name then values[name] = value end
  end
  f:close()
  for _, need in ipairs({ "ALLOW_METHODS", "ALLOW_HEADERS", "EXPOSE_HEADERS", "MAX_AGE" }) do
    if not values[need] then
      error("cors.lua: " .. path .. " defines no MEDIMG_CORS_" .. need)
    end
  end
  package.loaded[key] = values
  return values
end

local function append_vary(value)
  local vary = r.resp_header["Vary"]
  if vary == nil or vary == "" then
    r.resp_header["Vary"] = value
  elseif not string.find(string.lower(vary), string.lower(value), 1, true) then
    r.resp_header["Vary"] = vary .. ", " .. value
  end
end

if listed then
  -- The answer depends on Origin: caches must keep one copy per origin.
  append_vary("Origin")
end
if not any and not allowed then
  return 0
end

local v = header_values()
if allowed then
  r.resp_header["Access-Control-Allow-Origin"] = allowed
  r.resp_header["Access-Control-Allow-Credentials"] = "true"
else
  r.resp_header["Access-Control-Allow-Origin"] = "*"
end
r.resp_header["Access-Control-Expose-Headers"] = v.EXPOSE_HEADERS
if r.req_attr["request.method"] == "OPTIONS" then
  r.resp_header["Access-Control-Allow-Methods"] = v.ALLOW_METHODS
  r.resp_header["Access-Control-Allow-Headers"] = v.ALLOW_HEADERS
  r.resp_header["Access-Control-Max-Age"] = v.MAX_AGE
end
return 0
