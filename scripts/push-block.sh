#!/usr/bin/env bash
# Push one of the two variants of this block to your Edge Impulse organization, the first time too.
#
#   scripts/push-block.sh directory [push options]    # parameters.json at the repo root (operatesOn: directory)
#   scripts/push-block.sh standalone [push options]   # blocks/standalone/parameters.json (standalone, data source)
#   scripts/push-block.sh standalone --dry-run        # only prepare and list the build folder
#
# `edge-impulse-blocks push` reads ./parameters.json and ./.ei-block-config (which block in which organization)
# from the folder it runs in, and refuses to run without the latter ("Run edge-impulse-blocks init"). So each
# variant is pushed from a temporary copy of the build context with its own parameters.json, and when it has
# no .ei-block-config yet, `edge-impulse-blocks init` runs there first (it asks for the organization and
# whether to create a new block). The config is kept afterwards, gitignored: ./.ei-block-config for the
# directory variant, blocks/standalone/.ei-block-config for the standalone one (EDGE_AUGMENT_BLOCK_CONFIG_DIR
# overrides the folder); later pushes update the same block. The two variants are separate blocks.
#
# Bucket mount (standalone): the block reads /mnt/s3fs/<bucket>. Mounts are chosen when the block is created
# and are not changed by later pushes (edit them in Studio). Give the bucket for the first push with
#   EI_BUCKET_ID=<id> EI_BUCKET_NAME=<name> scripts/push-block.sh standalone
# (written into the copy's parameters.json as info.transformMountpoints, mounted at /mnt/s3fs/<name>);
# without them, init asks which buckets to mount.
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
variant=${1:-}
shift || true
dry_run=0
if [ "${1:-}" = "--dry-run" ]; then dry_run=1; shift; fi

case "$variant" in
directory) params=$root/parameters.json; keep=${EDGE_AUGMENT_BLOCK_CONFIG_DIR:-$root} ;;
standalone) params=$root/blocks/standalone/parameters.json; keep=${EDGE_AUGMENT_BLOCK_CONFIG_DIR:-$root/blocks/standalone} ;;
*)
    echo "usage: $0 directory|standalone [--dry-run] [edge-impulse-blocks push options]" >&2
    exit 2
    ;;
esac

blocks() {
    if [ "$dry_run" = 1 ]; then
        echo "would run in $PWD: edge-impulse-blocks $*"
        return
    fi
    command -v edge-impulse-blocks >/dev/null || {
        echo "edge-impulse-blocks not found: install the Edge Impulse CLI (npm install -g edge-impulse-cli)" >&2
        exit 1
    }
    edge-impulse-blocks "$@"
}

build=$(mktemp -d)
trap 'rm -rf "$build"' EXIT
# What the Dockerfile copies, plus the files push reads (the .dockerignore keeps the archive small).
cp -r "$root/Dockerfile" "$root/.dockerignore" "$root/requirements.txt" "$root/transform.py" \
    "$root/README.md" "$root/augment" "$build/"
find "$build/augment" -name __pycache__ -prune -exec rm -rf {} +
cp "$params" "$build/parameters.json"
if [ -n "${EI_BUCKET_ID:-}" ] || [ -n "${EI_BUCKET_NAME:-}" ]; then
    [[ ${EI_BUCKET_ID:-} =~ ^[0-9]+$ && -n ${EI_BUCKET_NAME:-} && $EI_BUCKET_NAME != */* ]] || {
        echo "EI_BUCKET_ID must be a number and EI_BUCKET_NAME a bucket name (both needed)" >&2
        exit 2
    }
    python3 - "$build/parameters.json" "$EI_BUCKET_ID" "/mnt/s3fs/$EI_BUCKET_NAME" <<'PY'
import json, sys
path, bucket_id, mount = sys.argv[1], int(sys.argv[2]), sys.argv[3]
params = json.load(open(path))
params["info"]["transformMountpoints"] = [{"bucketId": bucket_id, "mountPoint": mount}]
json.dump(params, open(path, "w"), indent=2)
PY
fi
if [ -f "$keep/.ei-block-config" ]; then
    cp "$keep/.ei-block-config" "$build/"
fi

save_config() {
    if [ "$dry_run" = 0 ] && [ -f .ei-block-config ]; then
        mkdir -p "$keep"
        cp .ei-block-config "$keep/.ei-block-config"
    fi
}

cd "$build"
if [ ! -f .ei-block-config ]; then
    blocks init
    save_config # kept even if the push fails: a retry pushes to the same block
fi
blocks push "$@"
save_config
if [ "$dry_run" = 1 ]; then
    find . -type f | sort
    grep -E '"(operatesOn|mountPoint)"' parameters.json
fi
