#!/usr/bin/env bash
# install-test.sh: `make install` into / and `make uninstall`, for real.
#
#   hack/install-test.sh [PREFIX]          (default /usr/local)
#
# Every file under PREFIX and /etc is listed before and compared after
# uninstall: uninstall must remove exactly what install added. In between:
# the commands run from PREFIX/bin, man finds the pages, and
# systemd-analyze verify passes on the installed units, man pages included.
# Needs root; refuses to run where ds01 is already installed.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

PREFIX=${1:-/usr/local}

die() {
	echo "install-test: FAIL: $*" >&2
	exit 1
}

[ "$(id -u)" -eq 0 ] || die "needs root (make install into $PREFIX)"
# One host-installing test at a time (deb-test.sh and install-test.sh, from
# concurrent test runs on one machine): each checks that nothing is installed.
exec 8>/tmp/ds01-host-install-test.lock
flock -w 300 8 || die "another ds01 install test still holds /tmp/ds01-host-install-test.lock"
for f in "$PREFIX/bin/ds01-scan" "$PREFIX/bin/ds01-workloads" "$PREFIX/share/doc/ds01"; do
	[ ! -e "$f" ] || die "$f already exists: ds01 is installed here; not touching it"
done
[ -d /run/systemd/system ] && die "systemd is running here: make install would enable the timer on this machine; use hack/systemd-e2e.sh"

work=$(mktemp -d /tmp/ds01-install-test.XXXXXX)
installed=0
cleanup() {
	if [ "$installed" = 1 ]; then
		make --no-print-directory uninstall PREFIX="$PREFIX" >/dev/null 2>&1 || true
	fi
	rm -rf -- "$work"
}
trap cleanup EXIT

snapshot() {
	# Owner, group and mode too: install must not change existing directories.
	find "$PREFIX" /etc -xdev -printf '%M %u:%g %p\n' 2>/dev/null | sort -k3
}

t0=$SECONDS
snapshot >"$work/before"
echo "== make install PREFIX=$PREFIX"
installed=1
make --no-print-directory install PREFIX="$PREFIX"
manifest=$PREFIX/share/doc/ds01/install-manifest
[ -f "$manifest" ] || die "no $manifest"
echo "$(grep -c '^f ' "$manifest") files, $(grep -c '^d ' "$manifest") directories created"

echo "== the installed commands, man pages and units"
"$PREFIX/bin/ds01-workloads" --help >/dev/null || die "$PREFIX/bin/ds01-workloads --help"
"$PREFIX/bin/ds01-scan" --version >/dev/null || die "$PREFIX/bin/ds01-scan --version"
if command -v man >/dev/null; then
	for page in ds01-scan ds01-workloads; do
		# realpath: Debian's /usr/local/man is a link to share/man.
		found=$(realpath -e "$(man -w "$page" 2>/dev/null)" 2>/dev/null || true)
		case $found in "$PREFIX"/share/man/*) ;; *) die "man -w $page finds '$found', not under $PREFIX" ;; esac
	done
	echo "man finds both pages under $PREFIX/share/man"
fi
case $PREFIX in
/usr | /usr/local)
	unitdir=$PREFIX/lib/systemd/system
	tmpfilesdir=$PREFIX/lib/tmpfiles.d
	;;
*)
	unitdir=/etc/systemd/system
	tmpfilesdir=/etc/tmpfiles.d
	;;
esac
# Where systemd looks for them, not only where install put them.
if command -v systemctl >/dev/null; then
	found=$(systemctl --root=/ list-unit-files --no-legend 'ds01-scan.*' | awk '{ print $1 }' | sort | tr '\n' ' ')
	[ "$found" = "ds01-scan.service ds01-scan.timer " ] || die "systemd does not find the units in $unitdir (found: $found)"
	echo "systemctl finds ds01-scan.service and ds01-scan.timer in $unitdir"
fi
if command -v systemd-tmpfiles >/dev/null; then
	# Read it all first: grep -q would stop early and, with pipefail, fail.
	config=$(systemd-tmpfiles --cat-config 2>/dev/null)
	grep -qx "# $tmpfilesdir/ds01.conf" <<<"$config" ||
		die "systemd-tmpfiles does not read $tmpfilesdir/ds01.conf"
	echo "systemd-tmpfiles reads $tmpfilesdir/ds01.conf"
fi
grep -qx "ExecStart=$PREFIX/bin/ds01-scan \$DS01_SCAN_ARGS" "$unitdir/ds01-scan.service" ||
	die "$unitdir/ds01-scan.service does not run $PREFIX/bin/ds01-scan"
if command -v systemd-analyze >/dev/null; then
	out=$(systemd-analyze verify "$unitdir/ds01-scan.service" "$unitdir/ds01-scan.timer" 2>&1) ||
		die "systemd-analyze verify: $out"
	[ -z "$out" ] || die "systemd-analyze verify warns: $out"
	echo "systemd-analyze verify (man pages included): clean"
	systemd-analyze security --offline=true "$unitdir/ds01-scan.service" | tail -n 1
fi

echo "== make uninstall PREFIX=$PREFIX"
make --no-print-directory uninstall PREFIX="$PREFIX"
installed=0
snapshot >"$work/after"
if ! diff -u "$work/before" "$work/after"; then
	die "after uninstall $PREFIX and /etc differ from before install (diff above)"
fi
echo "PASS: make install / uninstall into $PREFIX in $((SECONDS - t0))s; nothing left"
