-- Run tokens are drawn for many requests at once (RunRateLimiter: the requests of one
-- tenant that arrive while a draw is being written share the next one). The bucket
-- records how many tokens its last draw granted, so that the drawing statement can
-- return it: the row is updated in place under its lock, and the grant is known only
-- there.
ALTER TABLE run_buckets ADD COLUMN granted integer NOT NULL DEFAULT 0;
