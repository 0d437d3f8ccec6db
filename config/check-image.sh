#!/usr/bin/env bash
# Runs the container commands of docs/containers.md AS WRITTEN (read from the page, between
# `<!-- container-commands -->` and the end of its code block) against a local build, plus what
# the page says of the image: numeric user 10001, /work owned by it, no wheels or pip left, the
# fast extra, OCI labels, the LICENSE, a read-only root with every capability dropped.
#
# Usage, from the project root, as root, with Podman (rootful) standing in for Docker:
#   bash config/check-image.sh
# The podman configuration of /work/shared/tools/build-image.sh is used when present (WORK, default
# /tmp/container-check/repro: its base image stand-in and storage); on a normal host nothing is
# needed. Sandbox-only adaptations to `docker build` (none changes what is built): --pull=never
# (no registry access), chroot isolation, the host CA bundle mounted for pip's TLS proxy.
#
# "As you": the commands say --user "$(id -u):$(id -g)"; this script runs as root, so it plays a
# user with uid/gid 1000 who owns the project copy the commands run in (`id` answers 1000 for them).
set -euo pipefail
cd "$(dirname "$0")/.."
SRC=$PWD
WORK=${WORK:-/tmp/container-check/repro}
if [ -f "$WORK/containers.conf" ]; then
  export CONTAINERS_CONF=$WORK/containers.conf CONTAINERS_STORAGE_CONF=$WORK/storage.conf
fi
CHECK=$(mktemp -d /tmp/snaprelabel-check.XXXXXX)
SIM=snaprelabel-check-sim
failures=0
log() { printf '\n=== %s\n' "$*"; }
ok() { printf 'ok   %s\n' "$*"; }
bad() { printf 'FAIL %s\n' "$*"; failures=$((failures + 1)); }
expect() { if [ "$1" = "$2" ]; then ok "$3: $1"; else bad "$3: got '$1', expected '$2'"; fi; }
cleanup() { podman rm -f "$SIM" >/dev/null 2>&1 || true; rm -rf "$CHECK"; }
trap cleanup EXIT

docker() {
  if [ "$1" = build ]; then
    shift
    podman build --pull=never --isolation chroot \
      -v /etc/ssl/certs/ca-certificates.crt:/etc/ssl/certs/ca-certificates.crt:ro "$@" > "$CHECK/build.log" 2>&1 \
      || { tail -30 "$CHECK/build.log"; return 1; }
    tail -1 "$CHECK/build.log"
  else
    podman "$@"
  fi
}
id() { case "${1:-}" in -u | -g) echo 1000 ;; *) command id "$@" ;; esac; }

# The documented commands: one per entry, backslash continuations joined.
mapfile -t COMMANDS < <(awk '/<!-- container-commands -->/{on=1; next}
  on && /^```sh/{inblock=1; next} inblock && /^```/{exit}
  inblock { line = line $0; if (sub(/\\$/, "", line)) next; print line; line = "" }' docs/containers.md)
[ "${#COMMANDS[@]}" -ge 5 ] || { echo "no container commands found in docs/containers.md" >&2; exit 1; }
command_starting() {  # the documented command that starts with $1 (exactly one)
  local found=() c
  for c in "${COMMANDS[@]}"; do [[ "$c" == "$1"* ]] && found+=("$c"); done
  [ "${#found[@]}" = 1 ] || { echo "docs/containers.md: ${#found[@]} commands start with '$1'" >&2; exit 1; }
  printf '%s' "${found[0]}"
}
run_documented() {  # prints the command, then runs it as written in the project copy
  local cmd
  cmd=$(command_starting "$1")
  printf '$ %s\n' "$cmd"
  (cd "$CHECK/project" && eval "$cmd")
}

# The project as a user has it: a copy owned by uid 1000.
mkdir -p "$CHECK/project"
(tar --exclude=.git --exclude=.venv --exclude='*.egg-info' --exclude=snaprelabel-demo -cf - .) \
  | tar -C "$CHECK/project" -xf -
chown -R 1000:1000 "$CHECK/project"

log "docker build, as documented"
run_documented "docker build"
IMAGE=snaprelabel:0.1.0

log "the image"
expect "$(podman image inspect $IMAGE --format '{{.Config.User}}')" "10001:10001" "user"
expect "$(podman run --rm --entrypoint stat $IMAGE -c '%u:%g' /work)" "10001:10001" "/work owner"
expect "$(podman image inspect $IMAGE --format '{{index .Labels "org.opencontainers.image.licenses"}}')" \
  "Apache-2.0" "OCI licenses label"
expect "$(podman image inspect $IMAGE --format '{{index .Labels "org.opencontainers.image.version"}}')" \
  "0.1.0" "OCI version label"
# (the base image's own ensurepip bundle is not ours to remove)
expect "$(podman run --rm --entrypoint sh $IMAGE -c \
  'find / -xdev \( -name "*.whl" ! -path "*/ensurepip/*" -o -path /opt/snaprelabel/bin/pip \) 2>/dev/null | wc -l')" \
  "0" "wheels or pip left"
expect "$(podman run --rm --entrypoint python $IMAGE -c 'import uvloop, orjson; print("fast")')" "fast" "fast extra"
expect "$(podman run --rm --entrypoint head $IMAGE -2 /usr/share/doc/snaprelabel/LICENSE | tr -s ' ' | tail -1)" \
  " Apache License" "LICENSE"
expect "$(podman run --rm --read-only --cap-drop ALL --security-opt no-new-privileges $IMAGE --version 2>&1)" \
  "snaprelabel $(sed -n 's/^__version__ = "\(.*\)"/\1/p' worker/__init__.py)" "--version, read-only root, no capability"

log "demo, as documented (as uid 1000, in a directory uid 1000 owns)"
set +e
run_documented "docker run --rm --user \"\$(id -u):\$(id -g)\" -v" 2>&1 | tail -3
code=${PIPESTATUS[0]}
set -e
expect "$code" "0" "demo exit code"
expect "$(stat -c %u "$CHECK/project/snaprelabel-demo/report.csv" 2>/dev/null)" "1000" "demo report owner"

log "run, as documented, against the simulator in a container"
podman rm -f "$SIM" >/dev/null 2>&1 || true
podman run -d --name "$SIM" $IMAGE simulate --host 0.0.0.0 --port 8776 --snapshots 3000 --token sim-token \
  >/dev/null
sleep 2
sim_ip=$(podman inspect "$SIM" --format '{{.NetworkSettings.IPAddress}}')
cp "$CHECK/project/snaprelabel-demo/jobs.csv" "$CHECK/project/jobs.csv"
run_documented "cp config/snaprelabel.env.example"
# "fill it in": the endpoint is the simulator's, the rate 50/s (the example's 5/s would take 100 s).
sed -i -e "s|^SNAPRELABEL_ENDPOINT=.*|SNAPRELABEL_ENDPOINT=http://$sim_ip:8776|" -e "s|^SNAPRELABEL_RATE=.*|SNAPRELABEL_RATE=50|" \
  "$CHECK/project/config/snaprelabel.env"
chown -R 1000:1000 "$CHECK/project"
export SNAPRELABEL_TOKEN=sim-token
set +e
run_documented "docker run --rm --user \"\$(id -u):\$(id -g)\" --env-file" 2>&1 \
  | grep -E '"event": "summary"' | cut -c1-160
code=${PIPESTATUS[0]}
set -e
expect "$code" "1" "run exit code (the 6 bad rows)"
expect "$(stat -c %u "$CHECK/project/report.csv" 2>/dev/null)" "1000" "report owner"
expect "$(grep -c ',applied,' "$CHECK/project/report.csv" 2>/dev/null)" \
  "$(($(wc -l < "$CHECK/project/jobs.csv") - 1 - 6))" "applied rows in the report"

log "the token as a file (a Secret volume), read-only root, no capability, as uid 10001"
mkdir -p "$CHECK/secrets" && printf 'sim-token\n' > "$CHECK/secrets/token" && chmod 0444 "$CHECK/secrets/token"
set +e
podman run --rm --read-only --cap-drop ALL --security-opt no-new-privileges \
  -v "$CHECK/secrets:/run/secrets/snaprelabel-credentials:ro" \
  -e SNAPRELABEL_TOKEN_FILE=/run/secrets/snaprelabel-credentials/token -e SNAPRELABEL_ENDPOINT="http://$sim_ip:8776" \
  -e SNAPRELABEL_PROJECT_ID=0123456789abcdef0123456789abcdef $IMAGE \
  auth check > "$CHECK/auth.log" 2>&1
code=$?
set -e
expect "$code" "0" "auth check with SNAPRELABEL_TOKEN_FILE"
expect "$(grep -c sim-token "$CHECK/auth.log")" "0" "lines of output holding the token"
expect "$(git -C "$SRC" check-ignore -q config/snaprelabel.env && echo ignored)" "ignored" "the env copy is git-ignored"

log "$([ $failures = 0 ] && echo 'all checks passed' || echo "$failures check(s) failed")"
[ $failures = 0 ]
