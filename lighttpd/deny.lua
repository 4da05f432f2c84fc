-- medimg: 403 for hidden entries (.env, .git, ...) on the static routes
-- (mod_magnet). Hooked by medimg-routes.conf with
-- magnet.attract-physical-path-to instead of url.access-deny: mod_access
-- refuses before mod_setenv has run when the server lists mod_access first
-- (Debian's lighttpd.conf does), and cors.lua would then not see the
-- allow-list on the refusal.
return 403
