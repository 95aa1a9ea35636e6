#!/usr/bin/env bash
# make demo-physical: a point-in-time drill of a real pgBackRest repository,
# made on the spot. A "production" cluster archives its WAL into a
# repository under $DEMO_DIR/physical, takes a full backup, and writes rows
# after it; drill restores the backup to a moment between two batches of
# rows, checks that exactly the rows before it are there, measures RPO
# from the recovery point and removes everything.
set -euo pipefail
cd "$(dirname "$0")/../.."

say() { printf '\n\033[1m%s\033[0m\n' "$*"; }

PGBIN=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1)
[ -n "$PGBIN" ] || PGBIN=$(dirname "$(command -v pg_ctl)")
if [ -z "$PGBIN" ] || [ ! -x "$PGBIN/initdb" ]; then
  echo "PostgreSQL's server programs are needed: run make demo first (it installs them as root)" >&2
  exit 1
fi
make --no-print-directory tools
command -v pgbackrest >/dev/null || { echo "pgbackrest is needed: sudo apt-get install pgbackrest" >&2; exit 1; }

# PostgreSQL refuses to run as root: as root, production runs as postgres,
# and drill's throwaway cluster as drill-sandbox, which reads the
# repository through its group (docs/physical.md).
if [ "$(id -u)" -eq 0 ]; then
  AS=(runuser -u postgres --)
  make --no-print-directory users >/dev/null
else
  AS=()
fi

DEMO_DIR="${DRILL_DEMO_DIR:-${TMPDIR:-/tmp}/drill-demo}"
DIR="$DEMO_DIR/physical"
PORT="${DRILL_DEMO_PORT:-54329}"
if [ -f "$DIR/pg/postmaster.pid" ]; then "${AS[@]}" "$PGBIN/pg_ctl" -D "$DIR/pg" -m immediate stop >/dev/null 2>&1 || true; fi
rm -rf "$DIR"
mkdir -p "$DIR/repo" "$DIR/lock" "$DIR/targets"
chmod 755 "$DEMO_DIR" "$DIR" "$DIR/targets"
if [ "$(id -u)" -eq 0 ]; then
  chown postgres "$DIR/lock"
  chown postgres:drill-sandbox "$DIR/repo" && chmod 2750 "$DIR/repo"   # readable by drill-sandbox, writable by postgres only
fi
stop() { "${AS[@]}" "$PGBIN/pg_ctl" -D "$DIR/pg" -m fast stop >/dev/null 2>&1 || true; }
trap stop EXIT

say "1/4 Building drill"
make --no-print-directory build
. examples/demo/sealing.sh

say "2/4 A production cluster archiving WAL into a pgBackRest repository ($DIR/repo)"
cat > "$DIR/pgbackrest.conf" <<CONF
[global]
repo1-path=$DIR/repo
lock-path=$DIR/lock
log-level-file=off
start-fast=y

[main]
pg1-path=$DIR/pg
pg1-port=$PORT
pg1-socket-path=$DIR
CONF
chmod 644 "$DIR/pgbackrest.conf"
[ "$(id -u)" -ne 0 ] || chown postgres "$DIR"
"${AS[@]}" "$PGBIN/initdb" -D "$DIR/pg" -U postgres --no-sync >/dev/null
cat >> "$DIR/pg/postgresql.conf" <<CONF
port = $PORT
unix_socket_directories = '$DIR'
listen_addresses = ''
wal_level = replica
archive_mode = on
archive_command = 'pgbackrest --config=$DIR/pgbackrest.conf --stanza=main archive-push %p'
CONF
"${AS[@]}" "$PGBIN/pg_ctl" -D "$DIR/pg" -l "$DIR/pg.log" -w start >/dev/null
psql() { "${AS[@]}" "$PGBIN/psql" -X -q -h "$DIR" -p "$PORT" -U postgres -d postgres -v ON_ERROR_STOP=1 "$@"; }
backrest() { "${AS[@]}" pgbackrest --config="$DIR/pgbackrest.conf" --stanza=main "$@"; }
backrest stanza-create
psql -c "create table orders (id int primary key, total numeric not null, created_at timestamptz not null default clock_timestamp())" \
     -c "insert into orders (id, total) select g, g * 1.5 from generate_series(1, 10000) g"
backrest --type=full backup
echo "full backup taken; writing 5000 more orders after it"
psql -c "insert into orders (id, total) select g, g * 1.5 from generate_series(10001, 15000) g"
sleep 2
TARGET=$(date -u +%Y-%m-%dT%H:%M:%SZ)
sleep 2
echo "target time $TARGET; then 1000 orders that the drill must not restore"
psql -c "insert into orders (id, total) select g, g * 1.5 from generate_series(15001, 16000) g" -c "select pg_switch_wal()" >/dev/null
sleep 3

say "3/4 The drill: recover the backup to $TARGET"
cat > "$DIR/drill.yaml" <<YAML
drills:
  - name: orders-pitr
    timeout: 10m
    source:
      type: pgbackrest
      stanza: main
      config: $DIR/pgbackrest.conf
      target_time: "$TARGET"
    target:
      type: local
      dir: $DIR/targets
      database: postgres
    checks:
      - type: sql
        name: exactly-the-orders-before-the-target
        query: select count(*) from orders
        expect: "15000"
      - type: amcheck
      - type: checksum
        table: public.orders
YAML
bin/drill validate --config "$DIR/drill.yaml"
set +e
bin/drill run orders-pitr --config "$DIR/drill.yaml"
code=$?
set -e

say "4/4 What is left"
echo "the repository, untouched: $(du -sh "$DIR/repo" | cut -f1) in $DIR/repo"
echo "throwaway clusters left in $DIR/targets: $(ls "$DIR/targets" | wc -l)"
cat <<MSG

The configuration is $DIR/drill.yaml; docs/physical.md explains each step.
bin/drill history orders-pitr shows the run; the production cluster is stopped now.
MSG
exit $code
