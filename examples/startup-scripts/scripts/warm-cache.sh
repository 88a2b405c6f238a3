#!/bin/sh
# post-config, after migrate: build a cache the children read (here, an index
# of the document root). Skipped on the rehearsal pass: the real pass rebuilds
# it a moment later anyway.
set -eu
root=$(cd "$(dirname "$0")/.." && pwd)
if [ "$PHASED_PASS" = 1 ]; then
  echo "rehearsal pass: cache left for pass 2"
  exit 0
fi
mkdir -p "$root/var"
tmp="$root/var/cache.index.$$"
find "$root/public" -type f | sort > "$tmp"
mv "$tmp" "$root/var/cache.index"
echo "cache warmed: $(wc -l < "$root/var/cache.index") files for generation $PHASED_GENERATION"
