-- The archive: the news source the gateways query themselves (gateway/archive.py).
-- Run once, at the server's first start, by db/initdb.d/10-archive.sh (the unit tests run
-- it too, tests/unit/postgres.py), as the superuser, with psql variables:
--   archive_password  the password of archive_reader, the gateways' role
--   rows              how many articles to seed
\set ON_ERROR_STOP on

CREATE SCHEMA archive;

CREATE TABLE archive.articles (
    id           text PRIMARY KEY,
    title        text NOT NULL,
    summary      text NOT NULL,
    published_at timestamptz NOT NULL
);

-- A feed of older news, one article every 17 minutes back from the upstreams' epoch
-- (upstream/articles.py): the same rows on every machine.
INSERT INTO archive.articles (id, title, summary, published_at)
SELECT
    format('archive-%s', lpad(n::text, 5, '0')),
    format('From the archive, number %s', n),
    format('archive reports story %s, filed %s minutes before the one after it.', n, 17),
    timestamptz '2025-05-15 12:00:00+00' - n * interval '17 minutes'
FROM generate_series(1, :rows) AS n;

-- The query reads the newest articles first: this index serves it (test_archive.py checks
-- the plan).
CREATE INDEX articles_published_at ON archive.articles (published_at DESC);
ANALYZE archive.articles;

-- The gateways' role: it can log in, read the archive, and nothing else. Every transaction
-- it starts is read-only, and it may not create in any schema.
CREATE ROLE archive_reader LOGIN PASSWORD :'archive_password';
ALTER ROLE archive_reader SET default_transaction_read_only = on;
REVOKE ALL ON SCHEMA public FROM PUBLIC;
GRANT USAGE ON SCHEMA archive TO archive_reader;
GRANT SELECT ON archive.articles TO archive_reader;
