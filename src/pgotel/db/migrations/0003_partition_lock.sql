-- Partition maintenance runs one caller at a time: every worker process of an app (`uvicorn --workers N`)
-- runs it at startup, and two of them creating the same day's partition at once made one fail
-- (duplicate relation) or two dropping the same one. The second caller now waits for the first, then
-- finds the partitions created (or dropped) and has nothing left to do. Lock key: 0x706707E3
-- (pgotel's keys: 0x706707E1 migrations, 0x706707E2 rollup refresh).

CREATE OR REPLACE FUNCTION pgotel.ensure_partitions(first_day date, last_day date) RETURNS integer
LANGUAGE plpgsql AS $$
DECLARE
    parent text;
    day date;
    created integer := 0;
    partition_name text;
BEGIN
    PERFORM pg_advisory_xact_lock(x'706707E3'::bigint);
    FOR parent IN SELECT name FROM pgotel.partitioned_tables LOOP
        day := first_day;
        WHILE day <= last_day LOOP
            partition_name := format('%s_p%s', parent, to_char(day, 'YYYYMMDD'));
            IF to_regclass(format('pgotel.%I', partition_name)) IS NULL THEN
                EXECUTE format(
                    'CREATE TABLE IF NOT EXISTS pgotel.%I PARTITION OF pgotel.%I FOR VALUES FROM (%L) TO (%L)',
                    partition_name, parent, day::timestamp AT TIME ZONE 'UTC', (day + 1)::timestamp AT TIME ZONE 'UTC');
                created := created + 1;
            END IF;
            day := day + 1;
        END LOOP;
    END LOOP;
    RETURN created;
END $$;

CREATE OR REPLACE FUNCTION pgotel.drop_expired_partitions(default_retention_days integer) RETURNS SETOF text
LANGUAGE plpgsql AS $$
DECLARE
    item record;
BEGIN
    PERFORM pg_advisory_xact_lock(x'706707E3'::bigint);
    FOR item IN
        SELECT child.relname AS partition_name, parent.relname AS parent_name
        FROM pg_inherits
        JOIN pg_class child ON child.oid = pg_inherits.inhrelid
        JOIN pg_class parent ON parent.oid = pg_inherits.inhparent
        JOIN pg_namespace ns ON ns.oid = parent.relnamespace AND ns.nspname = 'pgotel'
        JOIN pgotel.partitioned_tables pt ON pt.name = parent.relname
        WHERE child.relname ~ '_p[0-9]{8}$'
          AND to_date(right(child.relname, 8), 'YYYYMMDD')
              < (now() AT TIME ZONE 'UTC')::date - COALESCE(pt.retention_days, default_retention_days)
        ORDER BY child.relname
    LOOP
        EXECUTE format('ALTER TABLE pgotel.%I DETACH PARTITION pgotel.%I', item.parent_name, item.partition_name);
        EXECUTE format('DROP TABLE pgotel.%I', item.partition_name);
        RETURN NEXT item.partition_name;
    END LOOP;
END $$;
