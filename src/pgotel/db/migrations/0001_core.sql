-- Core telemetry schema: raw spans, logs and metric points in daily partitions,
-- with resources, scopes and metric series deduplicated into side tables.
-- Side-table ids are content fingerprints (a uuid derived from the canonical content), so a writer
-- knows the id of a resource, scope or series without a round trip and inserts it ON CONFLICT DO NOTHING.

CREATE TABLE pgotel.resources (
    id           uuid PRIMARY KEY,
    service_name text NOT NULL,
    attributes   jsonb NOT NULL,
    schema_url   text NOT NULL DEFAULT '',
    first_seen   timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE pgotel.scopes (
    id          uuid PRIMARY KEY,
    name        text NOT NULL,
    version     text,
    schema_url  text NOT NULL DEFAULT '',
    attributes  jsonb NOT NULL DEFAULT '{}'
);

-- One row per span. Timestamps keep nanoseconds in *_unix_nano; start_time (microseconds) is the
-- partition key and what SQL users filter on. Span ids are the 64-bit ids reinterpreted as signed bigint.
CREATE TABLE pgotel.spans (
    start_time         timestamptz NOT NULL,
    start_unix_nano    bigint NOT NULL,
    duration_ns        bigint NOT NULL,
    trace_id           uuid NOT NULL,
    span_id            bigint NOT NULL,
    parent_span_id     bigint,
    trace_state        text,
    trace_flags        smallint NOT NULL DEFAULT 0,
    name               text NOT NULL,
    kind               smallint NOT NULL,  -- OTLP SpanKind: 1 internal, 2 server, 3 client, 4 producer, 5 consumer
    status_code        smallint NOT NULL,  -- 0 unset, 1 ok, 2 error
    status_message     text,
    service_name       text NOT NULL,
    resource_id        uuid NOT NULL,
    scope_id           uuid NOT NULL,
    http_method        text,
    http_route         text,
    http_status_code   integer,
    attributes         jsonb NOT NULL,
    events             jsonb,
    links              jsonb,
    dropped_attributes integer NOT NULL DEFAULT 0,
    dropped_events     integer NOT NULL DEFAULT 0,
    dropped_links      integer NOT NULL DEFAULT 0
) PARTITION BY RANGE (start_time);
CREATE INDEX spans_trace_id ON pgotel.spans (trace_id);
CREATE INDEX spans_start_time ON pgotel.spans USING brin (start_time);
CREATE INDEX spans_service_route ON pgotel.spans (service_name, http_route, start_time)
    WHERE http_route IS NOT NULL;

CREATE TABLE pgotel.logs (
    time                timestamptz NOT NULL,
    time_unix_nano      bigint,  -- NULL when the record had no timestamp (time then holds the observed time)
    observed_unix_nano  bigint NOT NULL,
    trace_id            uuid,
    span_id             bigint,
    trace_flags         smallint NOT NULL DEFAULT 0,
    severity_number     smallint NOT NULL DEFAULT 0,
    severity_text       text,
    body                jsonb,
    event_name          text,
    service_name        text NOT NULL,
    resource_id         uuid NOT NULL,
    scope_id            uuid NOT NULL,
    attributes          jsonb NOT NULL,
    dropped_attributes  integer NOT NULL DEFAULT 0
) PARTITION BY RANGE (time);
CREATE INDEX logs_time ON pgotel.logs (time DESC);
CREATE INDEX logs_trace_id ON pgotel.logs (trace_id) WHERE trace_id IS NOT NULL;

-- kind: 1 gauge, 2 sum, 3 histogram, 4 exponential histogram.
-- temporality: 0 unspecified, 1 delta, 2 cumulative (OTLP's AggregationTemporality numbers).
CREATE TABLE pgotel.metric_series (
    id           uuid PRIMARY KEY,
    name         text NOT NULL,
    description  text NOT NULL DEFAULT '',
    unit         text NOT NULL DEFAULT '',
    kind         smallint NOT NULL,
    temporality  smallint NOT NULL DEFAULT 0,
    is_monotonic boolean NOT NULL DEFAULT false,
    service_name text NOT NULL,
    resource_id  uuid NOT NULL REFERENCES pgotel.resources (id),
    scope_id     uuid NOT NULL REFERENCES pgotel.scopes (id),
    attributes   jsonb NOT NULL
);
CREATE INDEX metric_series_name ON pgotel.metric_series (name, service_name);

-- Gauge and sum points: exactly one of value_int / value_double is set.
CREATE TABLE pgotel.metric_points (
    time            timestamptz NOT NULL,
    time_unix_nano  bigint NOT NULL,
    start_unix_nano bigint,          -- NULL for gauges, which have no start
    series_id       uuid NOT NULL,
    value_int       bigint,
    value_double    double precision,
    exemplars       jsonb
) PARTITION BY RANGE (time);
CREATE INDEX metric_points_series ON pgotel.metric_points (series_id, time);

CREATE TABLE pgotel.histogram_points (
    time            timestamptz NOT NULL,
    time_unix_nano  bigint NOT NULL,
    start_unix_nano bigint NOT NULL,
    series_id       uuid NOT NULL,
    count           bigint NOT NULL,
    sum             double precision,
    min             double precision,
    max             double precision,
    explicit_bounds double precision[] NOT NULL,
    bucket_counts   bigint[] NOT NULL,
    exemplars       jsonb
) PARTITION BY RANGE (time);
CREATE INDEX histogram_points_series ON pgotel.histogram_points (series_id, time);

CREATE TABLE pgotel.exp_histogram_points (
    time             timestamptz NOT NULL,
    time_unix_nano   bigint NOT NULL,
    start_unix_nano  bigint NOT NULL,
    series_id        uuid NOT NULL,
    count            bigint NOT NULL,
    sum              double precision,
    min              double precision,
    max              double precision,
    scale            integer NOT NULL,
    zero_count       bigint NOT NULL,
    zero_threshold   double precision NOT NULL DEFAULT 0,
    positive_offset  integer NOT NULL,
    positive_counts  bigint[] NOT NULL,
    negative_offset  integer NOT NULL,
    negative_counts  bigint[] NOT NULL,
    exemplars        jsonb
) PARTITION BY RANGE (time);
CREATE INDEX exp_histogram_points_series ON pgotel.exp_histogram_points (series_id, time);

-- Which partitioned tables get daily partitions, and how long each keeps them (NULL: the configured retention).
CREATE TABLE pgotel.partitioned_tables (
    name           text PRIMARY KEY,
    retention_days integer
);
INSERT INTO pgotel.partitioned_tables (name) VALUES
    ('spans'), ('logs'), ('metric_points'), ('histogram_points'), ('exp_histogram_points');

-- Creates the daily partitions of every partitioned table for [first_day, last_day]; idempotent.
CREATE FUNCTION pgotel.ensure_partitions(first_day date, last_day date) RETURNS integer
LANGUAGE plpgsql AS $$
DECLARE
    parent text;
    day date;
    created integer := 0;
    partition_name text;
BEGIN
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

-- Detaches and drops whole partitions that end before their table's retention cut-off.
CREATE FUNCTION pgotel.drop_expired_partitions(default_retention_days integer) RETURNS SETOF text
LANGUAGE plpgsql AS $$
DECLARE
    item record;
BEGIN
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
