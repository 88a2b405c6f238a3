#!/bin/sh
# post-config, order first: apply pending migrations, safely on both passes.
#
# At start phased runs the configuration pass twice (Apache's double start).
# Pass 1 is the rehearsal: this script only reports what it would apply.
# Pass 2 (and every graceful restart's pass) applies. A migration applied
# once is never applied again, so a restart applies only what is new.
#
# With DATABASE_URL set (any libpq URL or conninfo string), the migrations
# run against PostgreSQL with psql: each one in a single transaction with its
# row in schema_migrations, so a failed migration leaves no trace and fails
# the pass (the old generation keeps serving on a graceful restart). Without
# it, the script demonstrates the same logic on a ledger file,
# var/migrations.applied.
set -eu
root=$(cd "$(dirname "$0")/.." && pwd)
rehearsal=0
if [ "$PHASED_PASS" = 1 ] || [ "$PHASED_DRY_RUN" = 1 ]; then
  rehearsal=1
fi

if [ -n "${DATABASE_URL:-}" ]; then
  sql() { psql "$DATABASE_URL" -X -q -v ON_ERROR_STOP=1 "$@"; }
  sql -c "CREATE TABLE IF NOT EXISTS schema_migrations (name text PRIMARY KEY, applied_at timestamptz NOT NULL DEFAULT now())"
  applied() { [ -n "$(sql -tA -c "SELECT 1 FROM schema_migrations WHERE name = '$1'")" ]; }
  record() { sql -1 -f "$1" -c "INSERT INTO schema_migrations (name) VALUES ('$2')"; }
else
  ledger="$root/var/migrations.applied"
  mkdir -p "$root/var"
  touch "$ledger"
  applied() { grep -qx "$1" "$ledger"; }
  record() { echo "$2" >> "$ledger"; }
fi

pending=0
for m in "$root"/migrations/*.sql; do
  [ -e "$m" ] || continue
  name=$(basename "$m")
  applied "$name" && continue
  pending=$((pending + 1))
  if [ "$rehearsal" = 1 ]; then
    echo "would apply $name (pass $PHASED_PASS is the rehearsal)"
  else
    record "$m" "$name"
    echo "applied $name"
  fi
done
echo "migrations: $pending pending at pass $PHASED_PASS"
