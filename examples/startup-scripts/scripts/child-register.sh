#!/bin/sh
# child-init (and, with --remove, child-exit): keep a registry of the live
# children in var/children/, one file per generation and slot. A real
# deployment would register with a service directory or open a connection
# pool here: work that belongs to one child, after it starts.
set -eu
root=$(cd "$(dirname "$0")/.." && pwd)
mkdir -p "$root/var/children"
entry="$root/var/children/g$PHASED_GENERATION-slot$PHASED_SLOT"
if [ "${1:-}" = --remove ]; then
  rm -f "$entry"
  echo "child slot $PHASED_SLOT of generation $PHASED_GENERATION unregistered"
else
  echo "$PHASED_PHASE" > "$entry"
  echo "child slot $PHASED_SLOT of generation $PHASED_GENERATION registered"
fi
