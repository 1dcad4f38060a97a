#!/usr/bin/env bash
# Push one of the two variants of this block to your Edge Impulse organization.
#
#   scripts/push-block.sh directory [push options]    # parameters.json at the repo root (operatesOn: directory)
#   scripts/push-block.sh standalone [push options]   # blocks/standalone/parameters.json (standalone, data source)
#   scripts/push-block.sh standalone --dry-run        # only prepare and list the build folder
#
# `edge-impulse-blocks push` reads ./parameters.json and ./.ei-block-config (which block in which organization)
# from the folder it runs in. So the directory variant is pushed from the repo root, and the standalone one
# from a temporary copy of the build context with its own parameters.json; its .ei-block-config is kept in
# blocks/standalone/ (gitignored) so later pushes update the same block. The two are separate blocks.
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
variant=${1:-}
shift || true
dry_run=0
if [ "${1:-}" = "--dry-run" ]; then dry_run=1; shift; fi

push() {
    if [ "$dry_run" = 1 ]; then
        echo "would run in $PWD: edge-impulse-blocks push $*"
        return
    fi
    command -v edge-impulse-blocks >/dev/null || {
        echo "edge-impulse-blocks not found: install the Edge Impulse CLI (npm install -g edge-impulse-cli)" >&2
        exit 1
    }
    edge-impulse-blocks push "$@"
}

case "$variant" in
directory)
    cd "$root"
    push "$@"
    ;;
standalone)
    build=$(mktemp -d)
    trap 'rm -rf "$build"' EXIT
    # What the Dockerfile copies, plus the files push reads (the .dockerignore keeps the archive small).
    cp -r "$root/Dockerfile" "$root/.dockerignore" "$root/requirements.txt" "$root/transform.py" \
        "$root/README.md" "$root/augment" "$build/"
    find "$build/augment" -name __pycache__ -prune -exec rm -rf {} +
    cp "$root/blocks/standalone/parameters.json" "$build/parameters.json"
    if [ -f "$root/blocks/standalone/.ei-block-config" ]; then
        cp "$root/blocks/standalone/.ei-block-config" "$build/"
    fi
    cd "$build"
    push "$@"
    if [ "$dry_run" = 1 ]; then
        find . -type f | sort
        grep '"operatesOn"' parameters.json
    elif [ -f .ei-block-config ]; then
        cp .ei-block-config "$root/blocks/standalone/.ei-block-config"
    fi
    ;;
*)
    echo "usage: $0 directory|standalone [--dry-run] [edge-impulse-blocks push options]" >&2
    exit 2
    ;;
esac
