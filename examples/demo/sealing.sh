# Sourced by the demos once bin/drill is built, with DEMO_DIR set. Every
# demo records its runs in the same state database, sealed with one key
# kept beside the demo's files, outside the database (docs/security.md):
# drill refuses to record unsealed runs beside sealed ones.
mkdir -p "$DEMO_DIR"
SEALING_KEY="$DEMO_DIR/sealing.key"
[ -f "$SEALING_KEY" ] || bin/drill evidence keygen --sealing --out "$SEALING_KEY" >/dev/null
export DRILL_SEALING_KEY="$SEALING_KEY"
