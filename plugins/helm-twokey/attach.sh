#!/bin/sh
# Helm writes the rendered manifests to stdin and reads the result from stdout. The twokey command
# is $TWOKEY when set (for example "npx twokey"), else twokey on the PATH.
set -eu
exec ${TWOKEY:-twokey} attach "$@" -f -
