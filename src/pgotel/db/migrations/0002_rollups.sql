-- Per-endpoint RED rollups of `http.server.request.duration`: per minute (kept 8 days) and per hour
-- (kept 90 days), each row holding exact counts and a base-2 exponential histogram at one fixed scale.
--
-- Every rollup row carries its own delta (what happened in that bucket) and the running total of its
-- endpoint up to and including that bucket (cum_*). Any window is then `last.cum - first.cum + first.delta`:
-- three rows per endpoint whatever the window length or the traffic, which is what keeps a 7-day query
-- over 20M requests in milliseconds (merging 168 hourly histograms x 50 endpoints costs ~1.3M array
-- elements, ~0.25 s; the running totals cost ~45k).
--
-- Late points: a row trigger marks the minute of every inserted exponential-histogram point in
-- rollup_dirty_minutes (an append-only queue: no unique key, so writers never wait on the refresher).
-- pgotel.refresh_http_rollups() takes the queue, recomputes those minutes from the raw points, then
-- the running totals and hours after them. A point arriving hours late is therefore rolled up exactly,
-- and a run with an empty queue costs one index probe per table.

-- Histogram buckets are OTel exponential-histogram indexes at scale `rollup_scale()`:
-- bucket i holds values in (2^(i/2^scale), 2^((i+1)/2^scale)]. Scale 5 gives 32 buckets per doubling,
-- so a bucket's geometric midpoint is within 1.09% of any value in it.
CREATE FUNCTION pgotel.rollup_scale() RETURNS integer LANGUAGE sql IMMUTABLE AS 'SELECT 5';

-- The `http.*` attributes that identify an endpoint and a response, old and new semantic conventions.
CREATE TABLE pgotel.http_endpoints (
    id           integer GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    service_name text NOT NULL,
    method       text NOT NULL,
    route        text NOT NULL,
    -- The one row that aggregates every endpoint of every service (charts and the summary read it).
    is_total     boolean NOT NULL DEFAULT false,
    UNIQUE (service_name, method, route, is_total)
);
INSERT INTO pgotel.http_endpoints (service_name, method, route, is_total) VALUES ('', '', '', true);

-- error_count counts responses with status >= 400 or an `error.type` attribute (the replaced system
-- counted status >= 400; `error.type` adds exceptions that never produced a status). error_counts breaks
-- those failed requests down, keys 'status:<code>' (0: none recorded) and 'type:<error.type>' when set;
-- cum_error_counts is its running total, so the error hotspots of any window also read two rows.
CREATE TABLE pgotel.http_rollup_1m (
    endpoint_id      integer NOT NULL,
    bucket           timestamptz NOT NULL,
    count            bigint NOT NULL,
    error_count      bigint NOT NULL,
    count_4xx        bigint NOT NULL,
    count_5xx        bigint NOT NULL,
    sum              double precision NOT NULL,
    min              double precision,
    max              double precision,
    zero_count       bigint NOT NULL,
    hist_offset      integer NOT NULL,
    hist_counts      bigint[] NOT NULL,
    cum_count        bigint NOT NULL DEFAULT 0,
    cum_error_count  bigint NOT NULL DEFAULT 0,
    cum_4xx          bigint NOT NULL DEFAULT 0,
    cum_5xx          bigint NOT NULL DEFAULT 0,
    cum_sum          double precision NOT NULL DEFAULT 0,
    cum_zero_count   bigint NOT NULL DEFAULT 0,
    cum_offset       integer NOT NULL DEFAULT 0,
    cum_counts       bigint[] NOT NULL DEFAULT '{}',
    error_counts     jsonb NOT NULL DEFAULT '{}',
    cum_error_counts jsonb NOT NULL DEFAULT '{}',
    PRIMARY KEY (endpoint_id, bucket)
);
CREATE INDEX http_rollup_1m_bucket ON pgotel.http_rollup_1m (bucket);

CREATE TABLE pgotel.http_rollup_1h (LIKE pgotel.http_rollup_1m INCLUDING DEFAULTS, PRIMARY KEY (endpoint_id, bucket));
CREATE INDEX http_rollup_1h_bucket ON pgotel.http_rollup_1h (bucket);

CREATE TABLE pgotel.rollup_dirty_minutes (minute timestamptz NOT NULL);

CREATE FUNCTION pgotel.mark_rollup_minute_dirty() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO pgotel.rollup_dirty_minutes (minute) VALUES (date_trunc('minute', NEW.time, 'UTC'));
    RETURN NULL;
END $$;

-- A row trigger (cloned onto every partition) also fires for writes that name a partition directly.
CREATE TRIGGER exp_histogram_points_mark_rollup_dirty AFTER INSERT ON pgotel.exp_histogram_points
    FOR EACH ROW EXECUTE FUNCTION pgotel.mark_rollup_minute_dirty();

-- The dense form (offset, counts) of sparse (index, count) pairs with distinct indexes; zero counts dropped.
CREATE FUNCTION pgotel.hist_dense(idx integer[], cnt bigint[], OUT hist_offset integer, OUT hist_counts bigint[])
LANGUAGE sql IMMUTABLE AS $$
    WITH pairs AS (SELECT i, c FROM unnest(idx, cnt) AS p(i, c) WHERE c <> 0),
         bounds AS (SELECT min(i) AS lo, max(i) AS hi FROM pairs)
    SELECT COALESCE(bounds.lo, 0),
           ARRAY(SELECT COALESCE(pairs.c, 0)::bigint
                 FROM generate_series(bounds.lo, bounds.hi) AS g
                 LEFT JOIN pairs ON pairs.i = g
                 ORDER BY g)
    FROM bounds
$$;

-- a + sign * b, bucket by bucket, trimmed of zero buckets at both ends.
CREATE FUNCTION pgotel.hist_combine(a_offset integer, a bigint[], b_offset integer, b bigint[], sign integer,
                                    OUT hist_offset integer, OUT hist_counts bigint[])
LANGUAGE sql IMMUTABLE AS $$
    SELECT d.hist_offset, d.hist_counts
    FROM (
        SELECT array_agg(i) AS idx, array_agg(c) AS cnt
        FROM (
            SELECT i, sum(c)::bigint AS c
            FROM (
                SELECT a_offset + (o - 1)::integer AS i, v AS c FROM unnest(a) WITH ORDINALITY AS u(v, o)
                UNION ALL
                SELECT b_offset + (o - 1)::integer, sign * v FROM unnest(b) WITH ORDINALITY AS u(v, o)
            ) AS both_sides
            GROUP BY i
        ) AS summed
    ) AS sparse
    CROSS JOIN LATERAL pgotel.hist_dense(COALESCE(sparse.idx, '{}'), COALESCE(sparse.cnt, '{}')) AS d
$$;

-- a + sign * b, key by key, for maps of counts (error_counts); keys whose count becomes 0 are dropped.
CREATE FUNCTION pgotel.counts_combine(a jsonb, b jsonb, sign integer) RETURNS jsonb
LANGUAGE sql IMMUTABLE AS $$
    SELECT COALESCE(jsonb_object_agg(key, total), '{}')
    FROM (
        SELECT key, sum(n)::bigint AS total
        FROM (
            SELECT key, value::bigint AS n FROM jsonb_each_text(a)
            UNION ALL
            SELECT key, sign * value::bigint FROM jsonb_each_text(b)
        ) AS both_sides
        GROUP BY key
    ) AS summed
    WHERE total <> 0
$$;

-- The bucket at scale `target` that holds bucket `idx` of scale `scale`. Downscaling is exact (buckets
-- nest); a coarser point's bucket goes to the sub-bucket just above its geometric midpoint.
CREATE FUNCTION pgotel.rescale_index(idx integer, scale integer, target integer) RETURNS integer
LANGUAGE sql IMMUTABLE AS $$
    SELECT CASE WHEN scale >= target THEN idx >> (scale - target)
                ELSE (idx << (target - scale)) + (1 << (target - scale - 1)) END
$$;

-- Endpoint, status and error type of each `http.server.request.duration` point.
CREATE VIEW pgotel.http_duration_points AS
SELECT p.time,
       date_trunc('minute', p.time, 'UTC') AS minute,
       s.service_name,
       COALESCE(s.attributes ->> 'http.request.method', s.attributes ->> 'http.method', '') AS method,
       COALESCE(s.attributes ->> 'http.route', '') AS route,
       CASE WHEN code.text ~ '^[0-9]{1,3}$' THEN code.text::integer ELSE 0 END AS status_code,
       COALESCE(s.attributes ->> 'error.type', '') AS error_type,
       p.count, p.sum, p.min, p.max, p.zero_count, p.scale, p.positive_offset, p.positive_counts
FROM pgotel.exp_histogram_points p
JOIN pgotel.metric_series s ON s.id = p.series_id
CROSS JOIN LATERAL (
    SELECT COALESCE(s.attributes ->> 'http.response.status_code', s.attributes ->> 'http.status_code') AS text
) AS code
WHERE s.name = 'http.server.request.duration' AND s.kind = 4;

-- Rebuilds the running totals of one endpoint's minute rows from bucket `since` onward, continuing from
-- its previous minute row or, when retention removed it, from its last hour row before `since`.
CREATE FUNCTION pgotel.rollup_rebuild_totals(endpoint integer, since timestamptz) RETURNS void
LANGUAGE plpgsql AS $$
DECLARE
    prev record;
    minute_row record;
    merged record;
BEGIN
    SELECT cum_count, cum_error_count, cum_4xx, cum_5xx, cum_sum, cum_zero_count, cum_offset, cum_counts,
           cum_error_counts INTO prev
    FROM pgotel.http_rollup_1m WHERE endpoint_id = endpoint AND bucket < since ORDER BY bucket DESC LIMIT 1;
    IF NOT FOUND THEN
        SELECT cum_count, cum_error_count, cum_4xx, cum_5xx, cum_sum, cum_zero_count, cum_offset, cum_counts,
               cum_error_counts INTO prev
        FROM pgotel.http_rollup_1h WHERE endpoint_id = endpoint AND bucket < date_trunc('hour', since, 'UTC')
        ORDER BY bucket DESC LIMIT 1;
    END IF;
    IF NOT FOUND THEN
        SELECT 0::bigint AS cum_count, 0::bigint AS cum_error_count, 0::bigint AS cum_4xx, 0::bigint AS cum_5xx,
               0::float8 AS cum_sum, 0::bigint AS cum_zero_count, 0 AS cum_offset, '{}'::bigint[] AS cum_counts,
               '{}'::jsonb AS cum_error_counts
        INTO prev;
    END IF;
    FOR minute_row IN
        SELECT bucket, count, error_count, count_4xx, count_5xx, sum, zero_count, hist_offset, hist_counts,
               error_counts
        FROM pgotel.http_rollup_1m WHERE endpoint_id = endpoint AND bucket >= since ORDER BY bucket
    LOOP
        SELECT * INTO merged
        FROM pgotel.hist_combine(prev.cum_offset, prev.cum_counts, minute_row.hist_offset, minute_row.hist_counts, 1);
        SELECT prev.cum_count + minute_row.count AS cum_count,
               prev.cum_error_count + minute_row.error_count AS cum_error_count,
               prev.cum_4xx + minute_row.count_4xx AS cum_4xx, prev.cum_5xx + minute_row.count_5xx AS cum_5xx,
               prev.cum_sum + minute_row.sum AS cum_sum, prev.cum_zero_count + minute_row.zero_count AS cum_zero_count,
               merged.hist_offset AS cum_offset, merged.hist_counts AS cum_counts,
               CASE WHEN minute_row.error_counts = '{}' THEN prev.cum_error_counts
                    ELSE pgotel.counts_combine(prev.cum_error_counts, minute_row.error_counts, 1) END AS cum_error_counts
        INTO prev;
        UPDATE pgotel.http_rollup_1m
        SET cum_count = prev.cum_count, cum_error_count = prev.cum_error_count, cum_4xx = prev.cum_4xx,
            cum_5xx = prev.cum_5xx, cum_sum = prev.cum_sum, cum_zero_count = prev.cum_zero_count,
            cum_offset = prev.cum_offset, cum_counts = prev.cum_counts, cum_error_counts = prev.cum_error_counts
        WHERE endpoint_id = endpoint AND bucket = minute_row.bucket;
    END LOOP;
END $$;

-- Rebuilds one endpoint's hour rows from the hour of `since` onward out of its minute rows: sums of the
-- scalars, histogram and error counts = last.cum - first.cum + first.delta, running totals of the hour's
-- last minute.
CREATE FUNCTION pgotel.rollup_rebuild_hours(endpoint integer, since timestamptz) RETURNS void
LANGUAGE plpgsql AS $$
BEGIN
    DELETE FROM pgotel.http_rollup_1h
    WHERE endpoint_id = endpoint AND bucket >= date_trunc('hour', since, 'UTC');
    INSERT INTO pgotel.http_rollup_1h (endpoint_id, bucket, count, error_count, count_4xx, count_5xx, sum, min, max,
                                       zero_count, hist_offset, hist_counts, cum_count, cum_error_count,
                                       cum_4xx, cum_5xx, cum_sum, cum_zero_count, cum_offset, cum_counts,
                                       error_counts, cum_error_counts)
    SELECT endpoint, h.hour, h.count, h.error_count, h.count_4xx, h.count_5xx, h.sum, h.min, h.max,
           h.zero_count, hist.hist_offset, hist.hist_counts, l.cum_count, l.cum_error_count, l.cum_4xx,
           l.cum_5xx, l.cum_sum, l.cum_zero_count, l.cum_offset, l.cum_counts,
           pgotel.counts_combine(pgotel.counts_combine(l.cum_error_counts, f.cum_error_counts, -1), f.error_counts, 1),
           l.cum_error_counts
    FROM (
        SELECT date_trunc('hour', bucket, 'UTC') AS hour, sum(count)::bigint AS count,
               sum(error_count)::bigint AS error_count, sum(count_4xx)::bigint AS count_4xx,
               sum(count_5xx)::bigint AS count_5xx, sum(sum) AS sum, min(min) AS min, max(max) AS max,
               sum(zero_count)::bigint AS zero_count, min(bucket) AS first_bucket, max(bucket) AS last_bucket
        FROM pgotel.http_rollup_1m
        WHERE endpoint_id = endpoint AND bucket >= date_trunc('hour', since, 'UTC')
        GROUP BY 1
    ) AS h
    JOIN pgotel.http_rollup_1m f ON f.endpoint_id = endpoint AND f.bucket = h.first_bucket
    JOIN pgotel.http_rollup_1m l ON l.endpoint_id = endpoint AND l.bucket = h.last_bucket
    CROSS JOIN LATERAL pgotel.hist_combine(l.cum_offset, l.cum_counts, f.cum_offset, f.cum_counts, -1) AS later
    CROSS JOIN LATERAL pgotel.hist_combine(later.hist_offset, later.hist_counts, f.hist_offset, f.hist_counts, 1) AS hist;
END $$;

-- Takes the dirty-minute queue and brings both rollup levels up to date; returns the minutes recomputed.
-- Callers serialise runs (pgotel.db.refresh_rollups holds a transaction-level advisory lock).
CREATE FUNCTION pgotel.refresh_http_rollups(minute_retention interval, hour_retention interval) RETURNS integer
LANGUAGE plpgsql AS $$
DECLARE
    dirty timestamptz[];
    first_minute timestamptz;
    last_minute timestamptz;
    total_id integer;
    touched record;
BEGIN
    DELETE FROM pgotel.http_rollup_1m WHERE bucket < now() - minute_retention;
    DELETE FROM pgotel.http_rollup_1h WHERE bucket < now() - hour_retention;

    WITH taken AS (DELETE FROM pgotel.rollup_dirty_minutes RETURNING minute)
    SELECT array_agg(DISTINCT minute), min(minute), max(minute) INTO dirty, first_minute, last_minute
    -- Older points are dropped: their hour's first minutes are already gone, so the hour could not be rebuilt.
    FROM taken WHERE minute >= date_trunc('hour', now() - minute_retention, 'UTC') + interval '1 hour';
    IF dirty IS NULL THEN
        RETURN 0;
    END IF;
    SELECT id INTO total_id FROM pgotel.http_endpoints WHERE is_total;

    INSERT INTO pgotel.http_endpoints (service_name, method, route)
    SELECT DISTINCT service_name, method, route FROM pgotel.http_duration_points
    WHERE time >= first_minute AND time < last_minute + interval '1 minute' AND minute = ANY (dirty)
    ON CONFLICT DO NOTHING;

    -- Session-lived scratch table (created once per connection, emptied at commit): read three times below.
    IF to_regclass('pg_temp.rollup_points') IS NULL THEN
        CREATE TEMP TABLE rollup_points (
            minute timestamptz, endpoint_id integer, status_code integer, error_type text, is_error boolean,
            count bigint, sum double precision, min double precision, max double precision, zero_count bigint,
            scale integer, positive_offset integer, positive_counts bigint[]
        ) ON COMMIT DELETE ROWS;
    END IF;
    INSERT INTO rollup_points
    SELECT d.minute, e.id, d.status_code, d.error_type, d.status_code >= 400 OR d.error_type <> '',
           d.count, COALESCE(d.sum, 0), d.min, d.max, d.zero_count, d.scale, d.positive_offset, d.positive_counts
    FROM pgotel.http_duration_points d
    JOIN pgotel.http_endpoints e
      ON NOT e.is_total AND (e.service_name, e.method, e.route) = (d.service_name, d.method, d.route)
    WHERE d.time >= first_minute AND d.time < last_minute + interval '1 minute' AND d.minute = ANY (dirty);

    DELETE FROM pgotel.http_rollup_1m WHERE bucket = ANY (dirty);
    WITH scalars AS (
        SELECT minute, COALESCE(endpoint_id, total_id) AS endpoint_id,
               sum(count)::bigint AS count,
               COALESCE(sum(count) FILTER (WHERE is_error), 0)::bigint AS error_count,
               COALESCE(sum(count) FILTER (WHERE status_code BETWEEN 400 AND 499), 0)::bigint AS count_4xx,
               COALESCE(sum(count) FILTER (WHERE status_code BETWEEN 500 AND 599), 0)::bigint AS count_5xx,
               sum(sum) AS sum, min(min) AS min, max(max) AS max, sum(zero_count)::bigint AS zero_count
        FROM rollup_points
        GROUP BY GROUPING SETS ((minute, endpoint_id), (minute))
    ), errors AS (
        SELECT minute, COALESCE(endpoint_id, total_id) AS endpoint_id, jsonb_object_agg(key, n) AS error_counts
        FROM (
            SELECT minute, endpoint_id, key, sum(count)::bigint AS n
            FROM rollup_points,
                 LATERAL (VALUES ('status:' || status_code), (CASE WHEN error_type <> '' THEN 'type:' || error_type END))
                 AS k(key)
            WHERE is_error AND count > 0 AND key IS NOT NULL
            GROUP BY GROUPING SETS ((minute, endpoint_id, key), (minute, key))
        ) AS per_key
        GROUP BY 1, 2
    ), buckets AS (
        SELECT minute, COALESCE(endpoint_id, total_id) AS endpoint_id, array_agg(idx) AS idx, array_agg(c) AS cnt
        FROM (
            SELECT minute, endpoint_id, idx, sum(c)::bigint AS c
            FROM (
                SELECT p.minute, p.endpoint_id, u.c,
                       pgotel.rescale_index(p.positive_offset + (u.o - 1)::integer, p.scale, pgotel.rollup_scale()) AS idx
                FROM rollup_points p, unnest(p.positive_counts) WITH ORDINALITY AS u(c, o)
                WHERE u.c > 0
            ) AS element
            GROUP BY GROUPING SETS ((minute, endpoint_id, idx), (minute, idx))
        ) AS sparse
        GROUP BY minute, endpoint_id
    )
    INSERT INTO pgotel.http_rollup_1m (endpoint_id, bucket, count, error_count, count_4xx, count_5xx,
                                       sum, min, max, zero_count, hist_offset, hist_counts, error_counts)
    SELECT s.endpoint_id, s.minute, s.count, s.error_count, s.count_4xx, s.count_5xx, s.sum, s.min, s.max,
           s.zero_count, d.hist_offset, d.hist_counts, COALESCE(e.error_counts, '{}')
    FROM scalars s
    LEFT JOIN buckets b ON b.minute = s.minute AND b.endpoint_id = s.endpoint_id
    LEFT JOIN errors e ON e.minute = s.minute AND e.endpoint_id = s.endpoint_id
    CROSS JOIN LATERAL pgotel.hist_dense(COALESCE(b.idx, '{}'), COALESCE(b.cnt, '{}')) AS d;

    -- Running totals, then every hour whose minutes changed or whose totals moved.
    FOR touched IN
        SELECT endpoint_id, min(minute) AS since
        FROM (SELECT endpoint_id, minute FROM rollup_points UNION ALL SELECT total_id, first_minute) AS t
        GROUP BY endpoint_id
    LOOP
        PERFORM pgotel.rollup_rebuild_totals(touched.endpoint_id, touched.since);
        PERFORM pgotel.rollup_rebuild_hours(touched.endpoint_id, touched.since);
    END LOOP;
    RETURN cardinality(dirty);
END $$;
