-- medimg: a clean refusal for a static path lighttpd cannot stat (mod_magnet,
-- package lighttpd-modules-lua).
--
-- lighttpd answers a failed stat() of a static file's physical path with 404
-- (ENOENT, ENAMETOOLONG), 403 (EACCES) or a PATH_INFO lookup (ENOTDIR), and
-- with its own 500 for every other errno. The one bad input that reaches that
-- 500 is a symlink loop under the data root (ELOOP: `a -> b`, `b -> a`, or a
-- link to itself); README.md allows no 5xx for bad input. Hooked by
-- medimg-routes.conf with magnet.attract-physical-path-to on the static routes
-- (after preflight.lua, so preflights are answered first). A path that stats is
-- left to lighttpd untouched (one stat, from lighttpd's stat cache, which
-- lighttpd's own check then reuses).
--
-- ENOTDIR (a path that continues below a file: "all.nii.gz/labels/",
-- "all.nii.gz/LABELS") is 404: lighttpd would serve the file with the rest as
-- path info (or, with static-file.disable-pathinfo, answer 403), while routes
-- match exactly (README.md) and Apache answers 404.
--
-- mod_magnet's stat gives no errno. Opening "PATH/." gives the same errno as
-- stat(PATH) for a path that does not resolve, and can never open a FIFO or a
-- device (only a directory has a "." entry), so it cannot block the server.
-- The errors lighttpd already maps (ENOENT 2, EACCES 13: the same numbers on
-- Linux and the BSDs) stay lighttpd's; ENOTDIR (20) is 404; any other is
-- refused with 403, as every symlink on these routes is
-- (server.follow-symlink disabled).

local r = lighty.r
local stat = (lighty.c and lighty.c.stat) or lighty.stat
local path = r.req_attr["physical.path"]

-- Range (RFC 9110 §14.2). A Range no byte of the file satisfies: lighttpd
-- 1.4.69 builds its 416 answer after the response-start hooks and clears
-- their headers (X-Content-Type-Options, CORS: docs/SECURITY.md), so it is
-- answered 416 here instead and cors.lua sees it like any other refusal. A
-- Range header that does not parse is ignored (the whole file, 200), as
-- Apache does and RFC 9110 allows; lighttpd would answer it with that same
-- header-less 416. Parts are "A-B", "A-" or "-N"; with If-Range the header
-- is left to lighttpd.
-- Returns "unsatisfiable", "malformed" or nil (lighttpd serves the range).
local function check_range(size)
  local range = r.req_header["Range"]
  if range == nil or r.req_header["If-Range"] ~= nil then return nil end
  local method = r.req_attr["request.method"]
  if method ~= "GET" and method ~= "HEAD" then return nil end
  local spec = string.match(range, "^%s*bytes%s*=(.*)$")
  if spec == nil then return "malformed" end
  local parts, satisfiable = 0, false
  for part in string.gmatch(spec .. ",", "([^,]*),") do
    -- Empty list elements are ignored (RFC 9110 §5.6.1.2).
    if string.match(part, "^%s*$") then goto next_part end
    local a, b = string.match(part, "^%s*(%d*)%s*%-%s*(%d*)%s*$")
    if a == nil or (a == "" and b == "") or #a > 15 or #b > 15 then return "malformed" end
    if a ~= "" and b ~= "" and tonumber(b) < tonumber(a) then return "malformed" end
    parts = parts + 1
    if a == "" then
      if tonumber(b) > 0 and size > 0 then satisfiable = true end
    elseif tonumber(a) < size then
      satisfiable = true
    end
    ::next_part::
  end
  if parts == 0 then return "malformed" end
  if not satisfiable then return "unsatisfiable" end
  return nil
end

if path == nil or path == "" then
  return 0
end
local st = stat(path)
if st then
  local range = st.is_file and check_range(st.st_size)
  if range == "unsatisfiable" then
    -- lighttpd clears the headers of a refusal before sending it: cors.lua
    -- adds this one back.
    r.req_env["MEDIMG_CONTENT_RANGE"] = "bytes */" .. tostring(st.st_size)
    return 416
  elseif range == "malformed" then
    r.req_header["Range"] = nil
  end
  return 0
end

local f, _, code = io.open(path .. "/.", "rb")
if f then
  f:close()        -- it appeared meanwhile: lighttpd decides
  return 0
end
if code == 2 or code == 13 then
  return 0
end
if code == 20 then
  return 404
end
return 403
