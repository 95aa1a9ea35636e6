#!/usr/bin/env bash
# make demo-rds: a whole RDS drill against the RDS API emulator (no AWS
# account): the newest snapshot of "shop-prod" is restored into an isolated,
# tagged instance, verified over TLS with a one-off password, and deleted.
# make demo-aurora (this script with "aurora"): the same for the newest
# cluster snapshot of the Aurora cluster "shop-aurora", restored into a
# tagged cluster with one instance in it.
set -euo pipefail
KIND="${1:-rds}"
case "$KIND" in
  rds)    SOURCE_FLAG=--snapshot; SOURCE=shop-prod;   DRILL=shop-rds;    CONFIG=examples/demo/drill-rds.yaml ;;
  aurora) SOURCE_FLAG=--cluster;  SOURCE=shop-aurora; DRILL=shop-aurora; CONFIG=examples/demo/drill-aurora.yaml ;;
  *) echo "usage: $0 [rds|aurora]" >&2; exit 2 ;;
esac
cd "$(dirname "$0")/../.."

say() { printf '\n\033[1m%s\033[0m\n' "$*"; }
DEMO_DIR="${DRILL_DEMO_DIR:-${TMPDIR:-/tmp}/drill-demo}"

say "1/4 Building drill and the RDS emulator"
make --no-print-directory build
go build -o bin/fakerds ./cmd/fakerds
. examples/demo/sealing.sh

say "2/4 Making the data of the production instance (a pg_dump stands for its snapshot)"
go run ./examples/demo/seed -dir "$DEMO_DIR"
DUMP=$(ls -t "$DEMO_DIR"/backups/*.dump | head -1)

say "3/4 Starting the emulator with source $KIND $SOURCE"
LOG="$DEMO_DIR/fakerds.log"
bin/fakerds --addr 127.0.0.1:0 "$SOURCE_FLAG" "$SOURCE=$DUMP" --create-delay 3s >"$LOG" 2>&1 &
FAKERDS=$!
trap 'kill $FAKERDS 2>/dev/null; wait $FAKERDS 2>/dev/null || true' EXIT
for _ in $(seq 50); do grep -q "listening on" "$LOG" && break; sleep 0.2; done
URL=$(grep -o 'http://[0-9.:]*' "$LOG" | head -1)
[ -n "$URL" ] || { cat "$LOG"; echo "the emulator did not start" >&2; exit 1; }
echo "  emulator at $URL"
export AWS_ENDPOINT_URL_RDS="$URL" AWS_REGION=us-east-1 AWS_ACCESS_KEY_ID=demo AWS_SECRET_ACCESS_KEY=demo AWS_EC2_METADATA_DISABLED=true

say "4/4 Running the drill: bin/drill run $DRILL --config $CONFIG"
set +e
bin/drill run "$DRILL" --config "$CONFIG"
code=$?
set -e

for _ in $(seq 100); do
  left=$(curl -s "$URL/_fakerds/instances")
  [ "$left" = '{"clusters":[],"instances":[]}' ] && break
  sleep 0.3
done
echo
echo "Left in the emulator: $left"
exit $code
