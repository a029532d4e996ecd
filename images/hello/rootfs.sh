#!/bin/sh
# Writes the root file system of monkeyci/hello as a tar stream on stdout:
# monkeyci/busybox's (../busybox/rootfs.sh). Its command prints one line:
# an image whose own command is a job's whole work (a job without script).
#
# Usage: rootfs.sh [path-to-static-busybox] > rootfs.tar
set -eu

here=$(cd "$(dirname "$0")" && pwd)
exec sh "$here/../busybox/rootfs.sh" "$@"
