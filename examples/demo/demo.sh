#!/usr/bin/env bash
# make demo: a real drill, end to end, on this machine. No AWS, no set-up:
# a sample "production" database is made and backed up with pg_dump, then
# drill restores the backup into a throwaway PostgreSQL, verifies it,
# measures RTO and RPO and tears it down. The run is kept in drill's
# embedded state database, so `bin/drill history` shows it afterwards.
set -euo pipefail
cd "$(dirname "$0")/../.."

say() { printf '\n\033[1m%s\033[0m\n' "$*"; }

if ! command -v go >/dev/null; then
  echo "Go is not installed: get Go 1.26 (https://go.dev/dl/) and run make demo again" >&2
  exit 1
fi

if ! ls /usr/lib/postgresql/*/bin/pg_restore >/dev/null 2>&1 && ! command -v pg_restore >/dev/null 2>&1; then
  if [ "$(id -u)" -eq 0 ] && command -v apt-get >/dev/null; then
    say "Installing PostgreSQL (apt-get install postgresql)"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq && apt-get install -y -qq postgresql >/dev/null
  else
    cat >&2 <<'MSG'
PostgreSQL's programs (initdb, pg_ctl, pg_dump, pg_restore) are needed and not installed.
  Debian/Ubuntu:  sudo apt-get install postgresql
  Fedora/RHEL:    sudo dnf install postgresql-server postgresql-contrib
  macOS:          brew install postgresql@16
or set DRILL_PG_BIN to the bin directory of an installation, then run make demo again.
MSG
    exit 1
  fi
fi

DEMO_DIR="${DRILL_DEMO_DIR:-${TMPDIR:-/tmp}/drill-demo}"
export DRILL_DEMO_BACKUPS="$DEMO_DIR/backups"

say "1/4 Building drill"
make --no-print-directory build
[ "$(id -u)" -ne 0 ] || make --no-print-directory users

say "2/4 Making a sample production database and backing it up"
go run ./examples/demo/seed -dir "$DEMO_DIR"

say "3/4 Running the drill: bin/drill run shop --config examples/demo/drill.yaml"
# The run is sealed with a key kept outside the state database.
. examples/demo/sealing.sh
set +e
bin/drill run shop --config examples/demo/drill.yaml
code=$?
set -e

say "4/4 Exporting the evidence an auditor would get, and verifying it offline"
KEY="$DEMO_DIR/evidence.key"
[ -f "$KEY" ] || bin/drill evidence keygen --out "$KEY" >/dev/null
bin/drill evidence export --out "$DEMO_DIR/evidence.zip" --drill shop --key "$KEY"
bin/drill evidence verify "$DEMO_DIR/evidence.zip" --pubkey "$KEY.pub"

cat <<MSG

What happened: drill found the newest backup in $DRILL_DEMO_BACKUPS, restored it into
a private PostgreSQL it started for this run, ran every check read-only, measured RTO
(start → verified copy) and RPO (start − backup time) against the objectives in
examples/demo/drill.yaml, and removed the instance again.

Its runs are sealed with $SEALING_KEY: set DRILL_SEALING_KEY to it for every
command that records runs (drill refuses to record unsealed runs beside sealed ones).

See it on the web page (history, RTO/RPO trends, phase timeline, Run now):
  DRILL_SEALING_KEY=$SEALING_KEY DRILL_DEMO_BACKUPS=$DRILL_DEMO_BACKUPS bin/drill serve --config examples/demo/drill.yaml
  then open http://127.0.0.1:8080/

Next:
  bin/drill history                                              # every run so far
  bin/drill show <ID> --json                                     # one run, as JSON
  unzip -l $DEMO_DIR/evidence.zip                                # the bundle: runs, CSV, report.html, signed manifest
  DRILL_SEALING_KEY=$SEALING_KEY DRILL_DEMO_BACKUPS=$DRILL_DEMO_BACKUPS bin/drill run shop --config examples/demo/drill.yaml --keep
                                                                 # keep the restored copy to look around
MSG
exit $code
