#!/usr/bin/env bash
# Run a command (the SQL-level tests) against a throwaway PostgreSQL built from the binaries in $1, e.g. an
# older major version than the embedded one: pgotel supports any external PostgreSQL >= 14. The command sees
# PGOTEL_TEST_SERVER_DSN (tests/conftest.py then creates its databases there instead of in the embedded server).
#   bash tests/with_postgres.sh /usr/lib/postgresql/15/bin .venv/bin/pytest -q tests/db
set -euo pipefail
bin=$1
shift
[ -x "$bin/initdb" ] || { echo "with_postgres.sh: no PostgreSQL binaries in $bin" >&2; exit 2; }
dir=$(mktemp -d)
chmod 755 "$dir"
as_server=()
if [ "$(id -u)" = 0 ]; then  # PostgreSQL refuses to run as root
    id embedded_postgres >/dev/null 2>&1 || useradd --system --no-create-home embedded_postgres
    chown embedded_postgres "$dir"
    as_server=(runuser -u embedded_postgres --)
fi
port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
stop() {
    "${as_server[@]}" "$bin/pg_ctl" -D "$dir/data" -m fast -w stop >/dev/null 2>&1 || true
    rm -rf "$dir"
}
trap stop EXIT
"${as_server[@]}" "$bin/initdb" -D "$dir/data" -U postgres --auth=trust --locale=C --encoding=UTF8 --no-sync >/dev/null
echo "shared_preload_libraries = 'pg_stat_statements'" >>"$dir/data/postgresql.conf"
"${as_server[@]}" "$bin/pg_ctl" -D "$dir/data" -l "$dir/server.log" -o "-p $port -h 127.0.0.1 -k ''" -w start >/dev/null
echo "with_postgres.sh: $("$bin/postgres" --version) on port $port"
PGOTEL_TEST_SERVER_DSN="postgresql://postgres@127.0.0.1:$port/postgres" "$@"
