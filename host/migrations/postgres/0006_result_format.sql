-- The format a thumbnail was made in: with format=auto it is chosen per image (JPEG or PNG by
-- alpha, WebP where the client accepts it), so it is no longer read off the options.
ALTER TABLE jobs ADD COLUMN IF NOT EXISTS result_format TEXT;
