-- ARGV: prefix, max query variants, then the URLs (see push_all). -> refused pairs.
return push_all(3, tonumber(ARGV[2]))
