#!/usr/bin/env bash
# make demo-rds: a whole RDS drill against the RDS API emulator (no AWS
# account): the newest snapshot of "shop-prod" is restored into an isolated,
# tagged instance, verified over TLS with a one-off password, and deleted.
set -euo pipefail
cd "$(dirname "$0")/../.."

say() { printf '\n\033[1m%s\033[0m\n' "$*"; }
DEMO_DIR="${DRILL_DEMO_DIR:-${TMPDIR:-/tmp}/drill-demo}"

say "1/4 Building drill and the RDS emulator"
make --no-print-directory build
go build -o bin/fakerds ./cmd/fakerds

say "2/4 Making the data of the production instance (a pg_dump stands for its snapshot)"
go run ./examples/demo/seed -dir "$DEMO_DIR"
DUMP=$(ls -t "$DEMO_DIR"/backups/*.dump | head -1)

say "3/4 Starting the emulator with source instance shop-prod"
LOG="$DEMO_DIR/fakerds.log"
bin/fakerds --addr 127.0.0.1:0 --snapshot "shop-prod=$DUMP" --create-delay 3s >"$LOG" 2>&1 &
FAKERDS=$!
trap 'kill $FAKERDS 2>/dev/null; wait $FAKERDS 2>/dev/null || true' EXIT
for _ in $(seq 50); do grep -q "listening on" "$LOG" && break; sleep 0.2; done
URL=$(grep -o 'http://[0-9.:]*' "$LOG" | head -1)
[ -n "$URL" ] || { cat "$LOG"; echo "the emulator did not start" >&2; exit 1; }
echo "  emulator at $URL"
export AWS_ENDPOINT_URL_RDS="$URL" AWS_REGION=us-east-1 AWS_ACCESS_KEY_ID=demo AWS_SECRET_ACCESS_KEY=demo AWS_EC2_METADATA_DISABLED=true

say "4/4 Running the drill: bin/drill run shop-rds --config examples/demo/drill-rds.yaml"
set +e
bin/drill run shop-rds --config examples/demo/drill-rds.yaml
code=$?
set -e

for _ in $(seq 100); do
  left=$(curl -s "$URL/_fakerds/instances")
  [ "$left" = '{"instances":[]}' ] || [ "$left" = '{"instances":[]}' ] && break
  sleep 0.3
done
echo
echo "Instances left in the emulator: $left"
exit $code
