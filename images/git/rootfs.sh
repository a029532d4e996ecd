#!/bin/sh
# Writes the root file system of monkeyci/git as a tar stream on stdout:
# monkeyci/busybox's (../busybox/rootfs.sh) and this machine's git program
# with the shared libraries it needs (as ldd lists them): for tests and
# examples of jobs that run git (git describe, git log) in their workspace.
#
# Usage: rootfs.sh [path-to-static-busybox] > rootfs.tar
set -eu

git=$(command -v git) || {
	echo "rootfs.sh: git not found: install Debian's git (apt-get install git)" >&2
	exit 1
}
here=$(cd "$(dirname "$0")" && pwd)
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT INT TERM

sh "$here/../busybox/rootfs.sh" "$@" | tar -C "$dir" -xf -
mkdir -p "$dir/usr/bin"
cp "$git" "$dir/usr/bin/git"
# Each library at the path the loader looks for it.
for lib in $(ldd "$git" | awk '/=>/ { print $3 } /^[[:space:]]*\// { print $1 }'); do
	mkdir -p "$dir$(dirname "$lib")"
	cp -L "$lib" "$dir$lib"
done
tar -C "$dir" --owner=0 --group=0 --numeric-owner --sort=name --mtime=@0 -cf - .
