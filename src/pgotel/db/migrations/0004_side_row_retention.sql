-- Resources, scopes and metric series expire like the telemetry that references them. A new process brings
-- its own resource (its service.instance.id) and with it a new row for each of its metric series, and a deploy
-- that changes service.version does the same: without an expiry these tables would grow with every restart.
-- Every writer upserts the side rows it uses once per UTC day (last_seen = that day); pruning deletes the rows
-- no writer has used for longer than any telemetry that could reference them is kept.

ALTER TABLE pgotel.resources ADD COLUMN last_seen date NOT NULL DEFAULT (now() AT TIME ZONE 'UTC')::date;
ALTER TABLE pgotel.scopes ADD COLUMN last_seen date NOT NULL DEFAULT (now() AT TIME ZONE 'UTC')::date;
ALTER TABLE pgotel.metric_series ADD COLUMN last_seen date NOT NULL DEFAULT (now() AT TIME ZONE 'UTC')::date;

-- The deletes below look up the series of each resource and scope.
CREATE INDEX metric_series_resource ON pgotel.metric_series (resource_id);
CREATE INDEX metric_series_scope ON pgotel.metric_series (scope_id);

-- Deletes the side rows last seen before the longest retention of the partitioned tables (default_retention_days
-- where a table has none of its own) plus 3 days: points may be dated up to 2 days ahead of the day they were
-- written, so a row last used on day D is referenced by nothing once the partitions of day D + 2 are dropped.
-- A series that a kept point still references stays whatever its last_seen says (a writer whose clock is off,
-- or that never upserts its rows again). Rows are locked in id order, as the writers' upserts lock them, and
-- rows a writer holds are skipped: the two never deadlock. At most 5,000 rows of each table per call (every
-- writer prunes as it connects and daily, under the partition maintenance's lock: a backlog left by many
-- process starts goes over a few calls instead of holding that lock). Returns how many rows it deleted.
CREATE FUNCTION pgotel.drop_expired_side_rows(default_retention_days integer) RETURNS integer
LANGUAGE plpgsql AS $$
DECLARE
    cutoff date;
    side record;
    deleted integer;
    total integer := 0;
BEGIN
    PERFORM pg_advisory_xact_lock(x'706707E3'::bigint);
    SELECT (now() AT TIME ZONE 'UTC')::date - max(COALESCE(retention_days, default_retention_days)) - 3
    INTO cutoff FROM pgotel.partitioned_tables;

    WITH expired AS (
        SELECT s.id FROM pgotel.metric_series s
        WHERE s.last_seen < cutoff
          AND NOT EXISTS (SELECT 1 FROM pgotel.metric_points p WHERE p.series_id = s.id)
          AND NOT EXISTS (SELECT 1 FROM pgotel.histogram_points p WHERE p.series_id = s.id)
          AND NOT EXISTS (SELECT 1 FROM pgotel.exp_histogram_points p WHERE p.series_id = s.id)
        ORDER BY s.id LIMIT 5000 FOR UPDATE SKIP LOCKED
    )
    DELETE FROM pgotel.metric_series WHERE id IN (SELECT id FROM expired);
    GET DIAGNOSTICS total = ROW_COUNT;

    FOR side IN SELECT * FROM (VALUES ('resources', 'resource_id'), ('scopes', 'scope_id')) AS t (tab, series_column)
    LOOP
        EXECUTE format(
            'WITH expired AS ('
            '    SELECT r.id FROM pgotel.%1$I r'
            '    WHERE r.last_seen < $1 AND NOT EXISTS (SELECT 1 FROM pgotel.metric_series s WHERE s.%2$I = r.id)'
            '    ORDER BY r.id LIMIT 5000 FOR UPDATE SKIP LOCKED'
            ') DELETE FROM pgotel.%1$I WHERE id IN (SELECT id FROM expired)',
            side.tab, side.series_column)
        USING cutoff;
        GET DIAGNOSTICS deleted = ROW_COUNT;
        total := total + deleted;
    END LOOP;
    RETURN total;
END $$;
