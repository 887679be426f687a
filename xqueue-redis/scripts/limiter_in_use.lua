-- Permits of a type held now. ARGV[2] type.
expire(now_ms())
return held(ARGV[2])
