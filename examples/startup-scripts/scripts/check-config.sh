#!/bin/sh
# configure: refuse a configuration that would serve a world-writable tree.
# Runs on every pass and on `phased -t`; it changes nothing, so a dry run is
# the same as a real one.
set -eu
root=$(dirname "$0")/..
if [ ! -f "$PHASED_CONFIG" ]; then
  echo "no effective configuration at $PHASED_CONFIG" >&2
  exit 1
fi
if [ -d "$root/public" ] && [ -n "$(find "$root/public" -maxdepth 0 -perm -o+w)" ]; then
  echo "public/ is world-writable; refusing to serve it" >&2
  exit 1
fi
echo "configuration checked (pass $PHASED_PASS, dry run: $PHASED_DRY_RUN)"
