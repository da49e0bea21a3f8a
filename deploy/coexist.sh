#!/bin/sh
# coexist: what installing ds01 does about the lab's existing ds01 tools, and
# undoes on removal. Run by the package's postinst and prerm and by
# `make install`/`make uninstall`:
#
#   coexist install ROTATE_RULE    ROTATE_RULE: the logrotate rule ds01 ships
#   coexist remove ROTATE_RULE
#
# install:
#   - stops and disables ds01-workload-detector.timer (the lab's
#     detect-workloads.py, which ds01-scan replaces) where it is enabled or
#     running, and says how to undo it;
#   - installs ROTATE_RULE as /etc/logrotate.d/ds01-scan only where no other
#     logrotate rule names /var/log/ds01/events.jsonl: the lab's own rule
#     (/etc/logrotate.d/ds01) rotates it where it exists, and two rules for
#     one log make logrotate report a duplicate and skip one;
#   - warns when /usr/local/bin/ds01-workloads (first on PATH) is not ds01's.
# remove: removes /etc/logrotate.d/ds01-scan if it is still the rule ds01
# installed. Neither touches the inventory or the log.
#
# BINDIR is where ds01's binaries are (default /usr/bin). ETC and BINLOCAL
# (default /etc, /usr/local/bin) let the tests point it elsewhere; SYSTEMCTL
# (default systemctl) likewise.
set -eu

etc=${ETC:-/etc}
binlocal=${BINLOCAL:-/usr/local/bin}
bindir=${BINDIR:-/usr/bin}
systemctl=${SYSTEMCTL:-systemctl}
log=/var/log/ds01/events.jsonl
ours=$etc/logrotate.d/ds01-scan
old_timer=ds01-workload-detector.timer

say() { echo "ds01: $*"; }

# other_rules: the logrotate rules other than ours that name the log, by
# path or by a pattern (a glob, as logrotate matches it) that matches it.
# The names are the words outside the { } of the stanzas.
other_rules() {
	for f in "$etc"/logrotate.conf "$etc"/logrotate.d/*; do
		if [ ! -f "$f" ] || [ "$f" = "$ours" ]; then
			continue
		fi
		matched=$(sed -e 's/#.*//' -e 's/[{}]/ & /g' "$f" | awk '
			{ for (i = 1; i <= NF; i++) { if ($i == "{") depth++; else if ($i == "}") depth--; else if (depth == 0) print $i } }' |
			while read -r pattern; do
				pattern=${pattern#\"}
				pattern=${pattern%\"}
				# shellcheck disable=SC2254 # a glob, as logrotate reads it
				case $log in $pattern)
					echo yes
					break
					;;
				esac
			done)
		if [ -n "$matched" ]; then
			echo "$f"
		fi
	done
}

stop_old_scanner() {
	[ -d /run/systemd/system ] || [ -n "${SYSTEMCTL:-}" ] || return 0
	if ! "$systemctl" cat "$old_timer" >/dev/null 2>&1; then
		return 0
	fi
	if "$systemctl" --quiet is-enabled "$old_timer" 2>/dev/null || "$systemctl" --quiet is-active "$old_timer" 2>/dev/null; then
		"$systemctl" disable --now "$old_timer" >/dev/null 2>&1 || true
		"$systemctl" stop ds01-workload-detector.service >/dev/null 2>&1 || true
		say "stopped and disabled $old_timer: ds01-scan replaces detect-workloads.py, and takes over its inventory on its first scan."
		say "  To undo: systemctl disable --now ds01-scan.timer && systemctl enable --now $old_timer"
		say "  The lab's deploy script enables $old_timer again on every run: remove that step from it."
	fi
}

install_rotation() {
	rule=$1
	others=$(other_rules)
	if [ -n "$others" ]; then
		say "$log is rotated by $(echo "$others" | tr '\n' ' ')(the lab's rule): ds01 adds no rule of its own."
		if [ -f "$ours" ] && cmp -s "$rule" "$ours"; then
			rm -f "$ours"
		fi
		return 0
	fi
	if [ -f "$ours" ] && ! cmp -s "$rule" "$ours"; then
		say "$ours differs from ds01's rule: kept as it is."
		return 0
	fi
	install -D -m 0644 "$rule" "$ours"
}

warn_path() {
	local_tool=$binlocal/ds01-workloads
	[ "$binlocal" != "$bindir" ] || return 0
	[ -e "$local_tool" ] || [ -L "$local_tool" ] || return 0
	target=$(readlink -f "$local_tool" 2>/dev/null || echo "$local_tool")
	case $target in
	*/bin/ds01-workloads)
		# ds01's binary, under another prefix or linked to it.
		if head -c 4 "$target" 2>/dev/null | grep -q ELF; then
			return 0
		fi
		;;
	esac
	say "$local_tool ($target) comes first on PATH and is not ds01's ds01-workloads."
	say "  Point it at ds01's: ln -sfn $bindir/ds01-workloads $local_tool"
	say "  (the lab's deploy script links it to its bash tool again on every run: remove that step from it)."
}

case ${1:-} in
install)
	[ $# -eq 2 ] || { echo "usage: coexist install ROTATE_RULE" >&2; exit 2; }
	stop_old_scanner
	install_rotation "$2"
	warn_path
	;;
remove)
	[ $# -eq 2 ] || { echo "usage: coexist remove ROTATE_RULE" >&2; exit 2; }
	if [ -f "$ours" ] && cmp -s "$2" "$ours"; then
		rm -f "$ours"
	elif [ -f "$ours" ]; then
		say "$ours was changed: kept."
	fi
	;;
*)
	echo "usage: coexist install|remove ROTATE_RULE" >&2
	exit 2
	;;
esac
exit 0
