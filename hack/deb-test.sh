#!/usr/bin/env bash
# deb-test.sh: the ds01 .deb on this machine, as an admin would use it.
#
#   hack/deb-test.sh DEB
#
# dpkg -i, check the files and that the commands and man pages work, and that
# postinst installed the logrotate rule (this machine has no other for the
# event log); dpkg -r and dpkg -P (nothing may stay). Every file under
# /usr, /etc and /var/lib/systemd is listed before and compared after. This
# machine runs no systemd, so the maintainer scripts must leave systemd alone
# (hack/systemd-e2e.sh covers a running one). Needs root; refuses to run where
# ds01 is already installed.
set -euo pipefail

die() {
	echo "deb-test: FAIL: $*" >&2
	exit 1
}

[ "$#" -eq 1 ] || {
	echo "usage: deb-test.sh DEB" >&2
	exit 2
}
deb=$(realpath -- "$1")
[ -f "$deb" ] || die "no package at $1 (make deb)"
[ "$(id -u)" -eq 0 ] || die "needs root (dpkg -i)"
# One host-installing test at a time (deb-test.sh and install-test.sh, from
# concurrent test runs on one machine): each checks that nothing is installed.
exec 8>/tmp/ds01-host-install-test.lock
flock -w 300 8 || die "another ds01 install test still holds /tmp/ds01-host-install-test.lock"
if dpkg-query -W -f '${db:Status-Status}' ds01 2>/dev/null | grep -qv '^not-installed$'; then
	die "the ds01 package is already on this machine ($(dpkg-query -W -f '${db:Status-Abbrev} ${Version}' ds01)); not touching it"
fi
for f in /usr/bin/ds01-scan /usr/bin/ds01-workloads; do
	[ ! -e "$f" ] || die "$f already exists; not touching it"
done

work=$(mktemp -d /tmp/ds01-deb-test.XXXXXX)
cleanup() {
	# Never leave the package behind, whatever failed.
	if dpkg-query -W -f '${db:Status-Status}' ds01 2>/dev/null | grep -qv '^not-installed$'; then
		dpkg -P ds01 >/dev/null 2>&1 || true
	fi
	rm -rf -- "$work"
}
trap cleanup EXIT

snapshot() {
	find /usr /etc /var/lib/systemd -xdev 2>/dev/null | sort
}

t0=$SECONDS
echo "== dpkg -i $(basename "$deb")"
snapshot >"$work/before"
dpkg -i "$deb"

echo "== the installed files"
dpkg -L ds01 | sort >"$work/listed"
want=(
	/usr/bin/ds01-scan
	/usr/bin/ds01-workloads
	/usr/lib/ds01/coexist
	/usr/lib/systemd/system/ds01-scan.service
	/usr/lib/systemd/system/ds01-scan.timer
	/usr/lib/tmpfiles.d/ds01.conf
	/usr/share/bash-completion/completions/ds01-scan
	/usr/share/bash-completion/completions/ds01-workloads
	/usr/share/doc/ds01/README.md
	/usr/share/doc/ds01/examples/grafana/ds01.json
	/usr/share/doc/ds01/examples/nss-network.conf
	/usr/share/doc/ds01/examples/prometheus/ds01-rules.yml
	/usr/share/doc/ds01/examples/textfile.conf
	/usr/share/ds01/logrotate
	/usr/share/man/man1/ds01-workloads.1.gz
	/usr/share/man/man8/ds01-scan.8.gz
	/usr/share/zsh/vendor-completions/_ds01-scan
	/usr/share/zsh/vendor-completions/_ds01-workloads
)
while read -r f; do
	[ -d "$f" ] || echo "$f"
done <"$work/listed" >"$work/files"
if ! diff -u <(printf '%s\n' "${want[@]}") "$work/files"; then
	die "the package's files differ from the expected list (diff above: - expected, + packaged)"
fi
for f in "${want[@]}"; do
	[ -f "$f" ] || die "$f listed but not installed"
done
grep -qx "ExecStart=/usr/bin/ds01-scan \$DS01_SCAN_ARGS" /usr/lib/systemd/system/ds01-scan.service ||
	die "the unit does not run /usr/bin/ds01-scan"
[ "$(dpkg-query -W -f '${Depends}' ds01)" = "$(dpkg-deb -f "$deb" Depends)" ] || die "Depends changed on install?"
case $(dpkg-deb -f "$deb" Depends) in
"libc6 (>= "*")") ;;
*) die "Depends is '$(dpkg-deb -f "$deb" Depends)': only libc6 is allowed (the package must install on minbase)" ;;
esac
conffiles=$(dpkg-query -W -f '${Conffiles}' ds01 | awk 'NF { print $1 }')
[ -z "$conffiles" ] || die "conffiles are '$conffiles', want none"
# The copy is the rule and a checksum line (deploy/coexist.sh).
if [ ! -f /etc/logrotate.d/ds01-scan ] || ! sed '$d' /etc/logrotate.d/ds01-scan | cmp -s - /usr/share/ds01/logrotate; then
	die "postinst did not install /etc/logrotate.d/ds01-scan"
fi
echo "$(wc -l <"$work/files") files, Depends: $(dpkg-deb -f "$deb" Depends), no conffile, /etc/logrotate.d/ds01-scan by postinst"

echo "== the commands, their man pages and completions"
ds01-workloads --help >"$work/help" || die "ds01-workloads --help failed"
grep -q 'ds01-workloads' "$work/help" || die "ds01-workloads --help printed no usage"
ds01-scan --help >/dev/null || die "ds01-scan --help failed"
ds01-scan --dry-run --state-dir "$work/state" --docker-host "unix://$work/no-docker.sock" >"$work/dry.json" 2>"$work/dry.log" ||
	die "ds01-scan --dry-run failed: $(cat "$work/dry.log")"
grep -q '"schema_version"' "$work/dry.json" || die "ds01-scan --dry-run printed no inventory"
if command -v man >/dev/null; then
	for page in ds01-scan.8 ds01-workloads.1; do
		found=$(man -w "${page%.*}" 2>/dev/null || true)
		[ "$found" = "/usr/share/man/man${page##*.}/$page.gz" ] || die "man -w ${page%.*} finds '$found'"
		rendered=$(MANWIDTH=80 man "${page%.*}" 2>/dev/null)
		grep -q '^OPTIONS' <<<"$rendered" || die "man ${page%.*} shows no OPTIONS"
	done
	echo "man ds01-scan, man ds01-workloads: found and rendered"
fi
bash -c 'source /usr/share/bash-completion/completions/ds01-workloads
	COMP_WORDS=(ds01-workloads --typ); COMP_CWORD=1; _ds01_workloads
	[ "${COMPREPLY[*]}" = --type ]' || die "bash completion of ds01-workloads --typ"
echo "ds01-workloads --help, ds01-scan --dry-run, bash completion: work"

# No systemd here: the maintainer scripts must not have enabled anything.
[ ! -e /etc/systemd/system/timers.target.wants/ds01-scan.timer ] ||
	die "postinst enabled the timer although systemd is not running"

echo "== dpkg -r ds01: nothing stays"
dpkg -r ds01
snapshot >"$work/removed"
left=$(comm -13 "$work/before" "$work/removed")
[ -z "$left" ] || die "after dpkg -r, left: $left"
gone=$(comm -23 "$work/before" "$work/removed")
[ -z "$gone" ] || die "dpkg -r removed files it did not install: $gone"

echo "== dpkg -P ds01: nothing stays"
dpkg -P ds01
snapshot >"$work/purged"
if ! diff -u "$work/before" "$work/purged"; then
	die "after dpkg -P the file tree differs from before dpkg -i (diff above)"
fi
echo "PASS: dpkg -i, -r, -P of $(basename "$deb") in $((SECONDS - t0))s; nothing left"
