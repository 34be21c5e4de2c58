-- Resources, scopes and metric series expire like the telemetry that references them. A new process brings
-- its own resource (its service.instance.id) and with it a new row for each of its metric series, and a deploy
-- that changes service.version does the same: without an expiry these tables would grow with every restart.
-- Every writer upserts the side rows it uses once per UTC day (last_seen = that day); pruning deletes the rows
-- no writer has used for longer than any telemetry that could reference them is kept.

ALTER TABLE pgotel.resources ADD COLUMN last_seen date NOT NULL DEFAULT (now() AT TIME ZONE 'UTC')::date;
ALTER TABLE pgotel.scopes ADD COLUMN last_seen date NOT NULL DEFAULT (now() AT TIME ZONE 'UTC')::date;
ALTER TABLE pgotel.metric_series ADD COLUMN last_seen date NOT NULL DEFAULT (now() AT TIME ZONE 'UTC')::date;

-- Deletes the side rows last seen before the longest retention of the partitioned tables (default_retention_days
-- where a table has none of its own) plus 3 days: points may be dated up to 2 days ahead of the day they were
-- written, so a row last used on day D is referenced by nothing once the partitions of day D + 2 are dropped.
-- Returns how many rows it deleted. Same lock as the partition maintenance it runs after.
CREATE FUNCTION pgotel.drop_expired_side_rows(default_retention_days integer) RETURNS integer
LANGUAGE plpgsql AS $$
DECLARE
    cutoff date;
    deleted integer;
    total integer := 0;
BEGIN
    PERFORM pg_advisory_xact_lock(x'706707E3'::bigint);
    SELECT (now() AT TIME ZONE 'UTC')::date - max(COALESCE(retention_days, default_retention_days)) - 3
    INTO cutoff FROM pgotel.partitioned_tables;
    DELETE FROM pgotel.metric_series WHERE last_seen < cutoff;
    GET DIAGNOSTICS deleted = ROW_COUNT;
    total := total + deleted;
    DELETE FROM pgotel.resources r
    WHERE r.last_seen < cutoff AND NOT EXISTS (SELECT 1 FROM pgotel.metric_series s WHERE s.resource_id = r.id);
    GET DIAGNOSTICS deleted = ROW_COUNT;
    total := total + deleted;
    DELETE FROM pgotel.scopes c
    WHERE c.last_seen < cutoff AND NOT EXISTS (SELECT 1 FROM pgotel.metric_series s WHERE s.scope_id = c.id);
    GET DIAGNOSTICS deleted = ROW_COUNT;
    RETURN total + deleted;
END $$;
