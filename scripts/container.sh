#!/usr/bin/env bash
# Build and run the block's Docker image with podman: no Docker engine and no container registry needed.
#
#   scripts/container.sh build        install podman/runc/debootstrap if missing, make the base image if
#                                     missing, build the Dockerfile (only BASE_IMAGE is overridden)
#   scripts/container.sh run ARGS...  run the image like `docker run`, with $PWD mounted at /data
#                                     (e.g. run --in-directory /data/demo/input --out-directory /data/demo/output);
#                                     (the image runs as root, as EI's examples; --user for another uid)
#   scripts/container.sh test [PYTEST ARGS]  build, then the container tests and the end-to-end tests in the image
#   scripts/container.sh ei-local     build, then run the image as EI does (tests/test_ei_local.py)
#   scripts/container.sh info         image size and start-up times (container vs. venv)
#   scripts/container.sh env          what tests/support/podman.py uses (IMAGE=, CONTAINERS_CONF=, SOURCE= hash)
#
# The base image stands in for python:3.11-slim-bookworm (same Debian release, Python 3.11): a debootstrap
# rootfs imported with `podman import`. Its tarball is cached in .cache/container/, the image in podman's store.
set -euo pipefail

CALLER_PWD=$PWD
cd "$(dirname "$0")/.."
ROOT=$PWD
IMAGE=${EDGE_AUGMENT_IMAGE:-localhost/edge-augment:test}
BASE_IMAGE=${EDGE_AUGMENT_BASE_IMAGE:-localhost/edge-augment-base:py3.11-bookworm}
CACHE=${EDGE_AUGMENT_CACHE:-$ROOT/.cache/container}
PYTHON=${PYTHON:-$ROOT/.venv/bin/python}
CA_BUNDLE=/etc/ssl/certs/ca-certificates.crt
BASE_PACKAGES=python3,python3-venv,python3-pip,ca-certificates
export CONTAINERS_CONF=$ROOT/ci/containers.conf DEBIAN_FRONTEND=noninteractive

now() { date +%s.%N; }
since() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.2f", b - a }'; }
log() { printf '[container] %s\n' "$*" >&2; }
size_mb() { podman image inspect --format '{{.Size}}' "$1" | awk '{ printf "%.0f MB", $1 / 1e6 }'; }

install_tools() {
  local missing=() tool
  for tool in podman runc debootstrap; do command -v "$tool" >/dev/null || missing+=("$tool"); done
  [ ${#missing[@]} -eq 0 ] && return
  [ "$(id -u)" -eq 0 ] || { log "missing ${missing[*]}: install them (needs root: apt-get install ${missing[*]})"; exit 1; }
  log "installing ${missing[*]}"
  apt-get update -qq && apt-get install -y -qq "${missing[@]}" >/dev/null
}

# The Debian mirror apt already uses on this machine (deb822 or one-line sources).
debian_mirror() {
  local m
  m=$(awk '/^URIs:/ { print $2; exit }' /etc/apt/sources.list.d/debian.sources 2>/dev/null || true)
  [ -n "$m" ] || m=$(awk '$1 == "deb" && $3 ~ /^bookworm$/ { print $2; exit }' /etc/apt/sources.list 2>/dev/null || true)
  [ -n "$m" ] || { log "no Debian mirror found in /etc/apt sources"; exit 1; }
  echo "$m"
}

ensure_base() {
  podman image exists "$BASE_IMAGE" && return
  local key tarball t0 rootfs
  key=$(echo "bookworm minbase $BASE_PACKAGES" | sha256sum | cut -c1-12)
  tarball=$CACHE/rootfs-bookworm-$key.tar
  if [ ! -s "$tarball" ]; then
    t0=$(now)
    mkdir -p "$CACHE"
    rootfs=$(mktemp -d "$CACHE/rootfs.XXXXXX")
    log "debootstrap bookworm (minbase + $BASE_PACKAGES) -> $tarball"
    debootstrap --variant=minbase --include="$BASE_PACKAGES" bookworm "$rootfs" "$(debian_mirror)" >"$CACHE/debootstrap.log"
    rm -rf "$rootfs"/var/cache/apt/archives/*.deb "$rootfs"/var/lib/apt/lists/*
    tar --numeric-owner -C "$rootfs" -cf "$tarball.part" . && mv "$tarball.part" "$tarball"
    rm -rf "$rootfs"
    log "rootfs made in $(since "$t0") s"
  fi
  t0=$(now)
  podman import --quiet \
    --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
    --change 'ENV LANG=C.UTF-8' --change 'CMD ["python3"]' \
    "$tarball" "$BASE_IMAGE" >/dev/null
  log "imported $BASE_IMAGE ($(size_mb "$BASE_IMAGE")) in $(since "$t0") s"
}

# Hash of what goes into the image; stored as a label so tests can tell a stale image from a current one.
source_hash() {
  { find Dockerfile requirements.txt transform.py parameters.json augment -name __pycache__ -prune -o -type f -print \
    2>/dev/null || true; } | LC_ALL=C sort | xargs -r sha256sum | sha256sum | cut -c1-16
}

build() {
  install_tools
  ensure_base
  [ -f parameters.json ] || { log "parameters.json is missing: the Dockerfile COPYs it"; exit 1; }
  local t0 old
  old=$(podman image inspect --format '{{.Id}}' "$IMAGE" 2>/dev/null || true)
  t0=$(now)
  podman build --quiet --pull=never --network host -v "$CA_BUNDLE:$CA_BUNDLE:ro" \
    --build-arg BASE_IMAGE="$BASE_IMAGE" --label "edge-augment.source=$(source_hash)" -t "$IMAGE" -f Dockerfile . >/dev/null
  log "built $IMAGE ($(size_mb "$IMAGE")) in $(since "$t0") s"
  # Drop the image this build replaced (its layers stay cached while the new image uses them).
  if [ -n "$old" ] && [ "$old" != "$(podman image inspect --format '{{.Id}}' "$IMAGE")" ]; then
    podman rmi "$old" >/dev/null 2>&1 || true
  fi
}

run() {
  local envs=() name
  for name in $(compgen -e); do [[ $name == EI_* ]] && envs+=(-e "$name"); done
  exec podman run --rm --network host "${envs[@]}" -v "$CALLER_PWD:/data" "$IMAGE" "$@"
}

# Seconds from `podman run`/`python` start until the first file appears in $2, then waits for the command.
first_output() {
  local out=$1 t0 pid first=""
  shift
  t0=$(now)
  "$@" >/dev/null &
  pid=$!
  while kill -0 "$pid" 2>/dev/null; do
    if [ -n "$(find "$out" -type f -print -quit 2>/dev/null)" ]; then first=$(since "$t0"); break; fi
    sleep 0.01
  done
  wait "$pid"
  echo "first output ${first:-$(since "$t0")} s, done $(since "$t0") s"
}

info() {
  podman image exists "$IMAGE" || { log "$IMAGE not built: run scripts/container.sh build"; exit 1; }
  local t0 run=(podman run --rm --network host)
  tmp=$(mktemp -d)
  trap 'rm -rf "$tmp"' EXIT
  chmod 0755 "$tmp"  # the image's default user (root, as EI's examples) writes here
  echo "image $IMAGE: $(size_mb "$IMAGE") (base $BASE_IMAGE: $(size_mb "$BASE_IMAGE"))"
  t0=$(now); "${run[@]}" "$IMAGE" --help >/dev/null; echo "container --help: $(since "$t0") s"
  t0=$(now); "${run[@]}" "$IMAGE" --help >/dev/null; echo "container --help (again): $(since "$t0") s"
  "${run[@]}" -v "$tmp:/data" --entrypoint python3 "$IMAGE" -m augment.demo /data/in >/dev/null
  echo "container small run (24 images, --copies 4): $(first_output "$tmp/out" "${run[@]}" -v "$tmp:/data" \
    "$IMAGE" --in-directory /data/in --out-directory /data/out --copies 4)"
  if [ -x "$PYTHON" ]; then
    rm -rf "$tmp/out"
    t0=$(now); "$PYTHON" -u transform.py --help >/dev/null; echo "venv --help: $(since "$t0") s"
    echo "venv small run (24 images, --copies 4): $(first_output "$tmp/out" "$PYTHON" -u transform.py \
      --in-directory "$tmp/in" --out-directory "$tmp/out" --copies 4)"
  fi
}

run_tests() {
  build
  # The container tests, plus every test file that runs the block through tests.support.blockrun.run_block (directly or
  # through test_ingestion's upload helper).
  local files
  mapfile -t files < <(grep -l -e 'run_block' -e 'from tests.test_ingestion import' tests/test_*.py \
    | grep -v -e tests/test_container.py -e tests/test_ei_local.py || true)
  EDGE_AUGMENT_RUNNER=podman EDGE_AUGMENT_IMAGE=$IMAGE \
    "$PYTHON" -m pytest -p no:cacheprovider tests/test_container.py tests/test_ei_local.py "${files[@]}" "$@"
}

case "${1:-}" in
  build) build ;;
  run) shift; run "$@" ;;
  test) shift; run_tests "$@"; info ;;
  ei-local) shift; build; "$PYTHON" -m pytest -p no:cacheprovider tests/test_ei_local.py -v "$@" ;;
  info) info ;;
  env) printf 'IMAGE=%s\nCONTAINERS_CONF=%s\nSOURCE=%s\n' "$IMAGE" "$CONTAINERS_CONF" "$(source_hash)" ;;
  *) sed -n '2,14p' "$0" >&2; exit 2 ;;
esac
