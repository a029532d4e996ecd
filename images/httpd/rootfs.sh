#!/bin/sh
# Writes the root file system of monkeyci/httpd as a tar stream on stdout:
# monkeyci/busybox's (../busybox/rootfs.sh) and /www/index.html, which its
# command, busybox's httpd, serves on port 8080. A service for tests and
# examples.
#
# Usage: rootfs.sh [path-to-static-busybox] > rootfs.tar
set -eu

here=$(cd "$(dirname "$0")" && pwd)
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT INT TERM

sh "$here/../busybox/rootfs.sh" "$@" | tar -C "$dir" -xf -
mkdir -p "$dir/www"
printf 'hello from monkeyci/httpd\n' >"$dir/www/index.html"
tar -C "$dir" --owner=0 --group=0 --numeric-owner --sort=name --mtime=@0 -cf - .
