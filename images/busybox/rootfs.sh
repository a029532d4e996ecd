#!/bin/sh
# Writes the root file system of monkeyci/busybox as a tar stream on stdout:
# Debian's static busybox as /bin/busybox, one relative symlink per applet in
# /bin (so /bin/sh, /bin/true, /bin/sleep, /bin/cat, /bin/nc... exist),
# /usr/bin/env for "#!/usr/bin/env" scripts, /tmp (1777), and a minimal
# /etc/passwd and /etc/group. Nothing is downloaded.
#
# Usage: rootfs.sh [path-to-static-busybox] > rootfs.tar
set -eu

bb=${1:-${BUSYBOX:-/bin/busybox}}
if [ ! -x "$bb" ]; then
	echo "rootfs.sh: $bb not found: install Debian's busybox-static (apt-get install busybox-static)" >&2
	exit 1
fi
# A dynamically linked busybox would not run in an image without a libc.
if command -v file >/dev/null 2>&1 && ! file -L "$bb" | grep -q 'static'; then
	echo "rootfs.sh: $bb is not statically linked: install busybox-static, not busybox" >&2
	exit 1
fi

dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT INT TERM

mkdir -p "$dir/bin" "$dir/usr/bin" "$dir/etc" "$dir/tmp" "$dir/root"
chmod 1777 "$dir/tmp"
chmod 0700 "$dir/root"
cp "$bb" "$dir/bin/busybox"
chmod 0755 "$dir/bin/busybox"
for applet in $("$bb" --list); do
	[ "$applet" = busybox ] && continue
	ln -s busybox "$dir/bin/$applet"
done
ln -s ../../bin/busybox "$dir/usr/bin/env"
printf 'root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n' >"$dir/etc/passwd"
printf 'root:x:0:\nnogroup:x:65534:\n' >"$dir/etc/group"

# Reproducible: fixed owner, order and times.
tar -C "$dir" --owner=0 --group=0 --numeric-owner --sort=name --mtime=@0 -cf - .
