#!/bin/sh
# Builds the project's local images without any registry: each folder
# images/NAME/ with a rootfs.sh becomes the image monkeyci/NAME:latest, made
# by `docker import` of the tar stream that rootfs.sh writes, with the
# Dockerfile instructions listed in images/NAME/changes (one a line).
#
# Usage: images/build.sh [--force] [NAME...]
#   Without NAME, every image is built. An image already present is skipped
#   unless --force is given. Each new image is smoke-tested with `true` and
#   `sh -c 'echo hi'`.
set -eu

here=$(cd "$(dirname "$0")" && pwd)
force=false
names=""
for arg in "$@"; do
	case "$arg" in
	--force | -f) force=true ;;
	-h | --help)
		sed -n '2,10p' "$0" | sed 's/^# \{0,1\}//'
		exit 0
		;;
	-*)
		echo "build.sh: unknown option $arg" >&2
		exit 2
		;;
	*) names="$names $arg" ;;
	esac
done
if [ -z "$names" ]; then
	for d in "$here"/*/; do
		[ -f "$d/rootfs.sh" ] && names="$names $(basename "$d")"
	done
fi

if ! docker version >/dev/null 2>&1; then
	echo "build.sh: the Docker engine is not reachable (is dockerd running? is DOCKER_HOST right?)" >&2
	exit 1
fi

for name in $names; do
	if [ ! -f "$here/$name/rootfs.sh" ]; then
		echo "build.sh: no image named $name (no $here/$name/rootfs.sh)" >&2
		exit 2
	fi
	ref="monkeyci/$name:latest"
	if [ "$force" = false ] && docker image inspect "$ref" >/dev/null 2>&1; then
		echo "$ref: present, skipped (--force rebuilds it)"
		continue
	fi

	# Collect the changes as positional parameters: "--change" "LINE"...
	set --
	if [ -f "$here/$name/changes" ]; then
		while IFS= read -r line || [ -n "$line" ]; do
			case "$line" in '' | '#'*) continue ;; esac
			set -- "$@" --change "$line"
		done <"$here/$name/changes"
	fi

	tar="$(mktemp)"
	trap 'rm -f "$tar"' EXIT INT TERM
	# Run rootfs.sh on its own first so that its failure (say, a missing
	# package) stops the build with its message instead of importing half a tar.
	sh "$here/$name/rootfs.sh" >"$tar"
	docker import "$@" --message "monkeyci images/build.sh" "$tar" "$ref" >/dev/null
	rm -f "$tar"

	docker run --rm --network none "$ref" true
	out=$(docker run --rm --network none "$ref" sh -c 'echo hi')
	if [ "$out" != hi ]; then
		echo "build.sh: $ref: smoke test printed '$out' instead of 'hi'" >&2
		exit 1
	fi
	echo "$ref: built"
done
