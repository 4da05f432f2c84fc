-- medimg: a clean refusal for a static path lighttpd cannot stat (mod_magnet,
-- package lighttpd-modules-lua).
--
-- lighttpd answers a failed stat() of a static file's physical path with 404
-- (ENOENT, ENAMETOOLONG), 403 (EACCES) or a PATH_INFO lookup (ENOTDIR), and
-- with its own 500 for every other errno. The one bad input that reaches that
-- 500 is a symlink loop under the data root (ELOOP: `a -> b`, `b -> a`, or a
-- link to itself); DESIGN.md §4 allows no 5xx for bad input. Hooked by
-- medimg-routes.conf with magnet.attract-physical-path-to on the static routes
-- (after cors.lua, so preflights are answered first). A path that stats is
-- left to lighttpd untouched (one stat, from lighttpd's stat cache, which
-- lighttpd's own check then reuses).
--
-- mod_magnet's stat gives no errno. Opening "PATH/." gives the same errno as
-- stat(PATH) for a path that does not resolve, and can never open a FIFO or a
-- device (only a directory has a "." entry), so it cannot block the server.
-- The errors lighttpd already maps (ENOENT 2, EACCES 13: the same numbers on
-- Linux and the BSDs) stay lighttpd's. ENOTDIR (20) is a file followed by
-- more path (`…/seg.nii.gz/labels/`, `…/seg.nii.gz/LABELS`): lighttpd would
-- serve the file with the rest as PATH_INFO, but routes match exactly
-- (DESIGN.md §4), so it is 404, as on Apache. Any other errno is refused with
-- 403, as every symlink on these routes is (server.follow-symlink disabled).

local r = lighty.r
local stat = (lighty.c and lighty.c.stat) or lighty.stat
local path = r.req_attr["physical.path"]

if path == nil or path == "" or stat(path) then
  return 0
end

local f, _, code = io.open(path .. "/.", "rb")
if f then
  f:close()        -- it appeared meanwhile: lighttpd decides
  return 0
end
if code == 20 then
  return 404
end
if code == 2 or code == 13 then
  return 0
end
return 403
