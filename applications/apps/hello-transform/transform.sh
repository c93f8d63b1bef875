#!/bin/sh
# kubesync transform for the hello-transform app.
#
# kubesync runs this (no shell of its own, no network needed) with
#   INDIR  - this application's source directory (read only)
#   OUTDIR - an empty directory; every *.yaml written there is the app's output
# It reads settings.env, stamps the templates/*.yaml.tpl files with sed and
# writes one YAML file per template into $OUTDIR.
set -eu

: "${INDIR:?INDIR must be set}"
: "${OUTDIR:?OUTDIR must be set}"

settings="$INDIR/settings.env"
[ -f "$settings" ] || { echo "transform.sh: $settings not found" >&2; exit 1; }

# Read KEY=value lines (comments and blank lines skipped) without sourcing them.
get() {
    sed -n "s/^$1=//p" "$settings" | tail -n 1
}
APP_NAME=$(get APP_NAME)
GREETING=$(get GREETING)
REPLICAS=$(get REPLICAS)
IMAGE=$(get IMAGE)

case "$REPLICAS" in
    ''|*[!0-9]*) echo "transform.sh: REPLICAS must be a number, got '$REPLICAS'" >&2; exit 1 ;;
esac
[ -n "$APP_NAME" ] && [ -n "$IMAGE" ] || { echo "transform.sh: APP_NAME and IMAGE are required" >&2; exit 1; }

# A content hash so a new greeting rolls the Deployment.
CONTENT_HASH=$(printf '%s' "$GREETING" | cksum | cut -d ' ' -f 1)

# Escape sed replacement metacharacters (\, & and the | delimiter).
esc() {
    printf '%s' "$1" | sed -e 's/[\\&|]/\\&/g'
}

found=0
for tpl in "$INDIR"/templates/*.yaml.tpl; do
    [ -f "$tpl" ] || continue
    found=1
    out="$OUTDIR/$(basename "$tpl" .tpl)"
    sed -e "s|@APP_NAME@|$(esc "$APP_NAME")|g" \
        -e "s|@GREETING@|$(esc "$GREETING")|g" \
        -e "s|@REPLICAS@|$(esc "$REPLICAS")|g" \
        -e "s|@IMAGE@|$(esc "$IMAGE")|g" \
        -e "s|@CONTENT_HASH@|$(esc "$CONTENT_HASH")|g" \
        "$tpl" > "$out"
done
[ "$found" -eq 1 ] || { echo "transform.sh: no templates in $INDIR/templates" >&2; exit 1; }
