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
#     running, and gives its service a drop-in that keeps it from running
#     while ds01-scan is installed: the lab's deploy script enables the timer
#     again on every run, and that scanner crashes on ds01's inventory;
#   - installs ROTATE_RULE as /etc/logrotate.d/ds01-scan only where no other
#     logrotate rule names /var/log/ds01/events.jsonl: the lab's own rule
#     (/etc/logrotate.d/ds01) rotates it where it exists, and two rules for
#     one log make logrotate report a duplicate and skip one. The copy ends
#     with a checksum line, so that an upgrade replaces it and removal takes
#     it away unless the admin changed it;
#   - removes /etc/logrotate.d/ds01 where it is the rule earlier ds01
#     versions installed under that name (the lab's own file has it too);
#   - warns when /usr/local/bin/ds01-workloads (first on PATH) is not ds01's.
# remove: takes away what install added, where it is unchanged. Neither
# touches the inventory or the log.
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
old_service=ds01-workload-detector.service
dropin=$etc/systemd/system/$old_service.d/ds01-scan.conf
# sha256 of the rule earlier ds01 versions installed as /etc/logrotate.d/ds01.
former_rule=eea1643f07f87249742f138bcfe53b823228b133584b2f880b45a9e28bd208ea
marker="# ds01 coexist, sha256 of the lines above:"

say() { echo "ds01: $*"; }

sha() { sha256sum | cut -d ' ' -f 1; }

# unchanged FILE: FILE is a rule coexist installed, as it installed it.
unchanged() {
	[ -f "$1" ] || return 1
	last=$(tail -n 1 "$1")
	case $last in "$marker "*) ;; *) return 1 ;; esac
	[ "$(sed '$d' "$1" | sha)" = "${last#"$marker "}" ]
}

# glob_matches PATTERN PATH: logrotate's glob(3) match, where a * never
# crosses a /.
glob_matches() {
	pattern=$1
	path=$2
	[ "$(printf %s "$pattern" | tr -cd / | wc -c)" = "$(printf %s "$path" | tr -cd / | wc -c)" ] || return 1
	while :; do
		# shellcheck disable=SC2254 # a glob, as logrotate reads it
		case ${path%%/*} in ${pattern%%/*}) ;; *) return 1 ;; esac
		case $path in */*) ;; *) return 0 ;; esac
		path=${path#*/}
		pattern=${pattern#*/}
	done
}

# other_rules: the logrotate rules other than ours that name the log, by
# path or by a pattern that matches it: the words outside the { } of the
# stanzas. Files logrotate skips (its taboo extensions) are skipped.
other_rules() {
	for f in "$etc"/logrotate.conf "$etc"/logrotate.d/*; do
		case $f in
		"$ours" | *.dpkg-old | *.dpkg-dist | *.dpkg-new | *.dpkg-bak | *.dpkg-del | *.dpkg-tmp | *.ucf-old | *.ucf-dist | *.ucf-new | \
			*.rpmorig | *.rpmsave | *.rpmnew | *.swp | *.cfsaved | *.disabled | *~ | *,v) continue ;;
		esac
		[ -f "$f" ] || continue
		matched=$(sed -e 's/#.*//' -e 's/[{}]/ & /g' "$f" | awk '
			{ for (i = 1; i <= NF; i++) { if ($i == "{") depth++; else if ($i == "}") depth--; else if (depth == 0) print $i } }' |
			while read -r pattern; do
				pattern=${pattern#\"}
				pattern=${pattern%\"}
				if glob_matches "$pattern" "$log"; then
					echo yes
					break
				fi
			done)
		if [ -n "$matched" ]; then
			echo "$f"
		fi
	done
}

stop_old_scanner() {
	[ -d /run/systemd/system ] || [ -n "${SYSTEMCTL:-}" ] || return 0
	"$systemctl" cat "$old_timer" >/dev/null 2>&1 || return 0
	mkdir -p "$(dirname "$dropin")"
	cat >"$dropin" <<-EOF
		# Installed by ds01 (coexist): ds01-scan replaces detect-workloads.py and
		# took over its inventory, which that scanner cannot read. Removed with ds01.
		[Unit]
		ConditionPathExists=!$bindir/ds01-scan
	EOF
	"$systemctl" daemon-reload >/dev/null 2>&1 || true
	if "$systemctl" --quiet is-enabled "$old_timer" 2>/dev/null || "$systemctl" --quiet is-active "$old_timer" 2>/dev/null; then
		"$systemctl" disable --now "$old_timer" >/dev/null 2>&1 || true
		"$systemctl" stop "$old_service" >/dev/null 2>&1 || true
		say "stopped and disabled $old_timer: ds01-scan replaces detect-workloads.py, and takes over its inventory on its first scan."
	fi
	say "  $dropin keeps detect-workloads.py from running while ds01-scan is installed"
	say "  (the lab's deploy script enables $old_timer again on every run)."
	say "  To go back: remove ds01, move /var/lib/ds01/workload-inventory.json aside (detect-workloads.py cannot read it;"
	say "  the one it left is kept as workload-inventory.json.detect-workloads-TIME), and systemctl enable --now $old_timer."
}

install_rotation() {
	rule=$1
	if [ -f "$etc/logrotate.d/ds01" ] && [ "$(sha <"$etc/logrotate.d/ds01")" = "$former_rule" ]; then
		rm -f "$etc/logrotate.d/ds01"
	fi
	others=$(other_rules)
	if [ -n "$others" ]; then
		say "$log is rotated by $(echo "$others" | tr '\n' ' ')(the lab's rule): ds01 adds no rule of its own."
		if unchanged "$ours"; then
			rm -f "$ours"
		fi
		return 0
	fi
	if [ -f "$ours" ] && ! unchanged "$ours"; then
		say "$ours was changed: kept as it is."
		return 0
	fi
	mkdir -p "$(dirname "$ours")"
	{
		cat "$rule"
		echo "$marker $(sha <"$rule")"
	} >"$ours.tmp"
	chmod 0644 "$ours.tmp"
	mv -f "$ours.tmp" "$ours"
}

warn_path() {
	local_tool=$binlocal/ds01-workloads
	[ "$binlocal" != "$bindir" ] || return 0
	[ -e "$local_tool" ] || [ -L "$local_tool" ] || return 0
	target=$(readlink -f "$local_tool" 2>/dev/null || echo "$local_tool")
	# ds01's binary, under another prefix or linked to it, is an ELF file.
	if [ "$(head -c 4 "$target" 2>/dev/null | tail -c 3)" = ELF ]; then
		return 0
	fi
	say "$local_tool ($target) comes first on PATH and is not ds01's ds01-workloads."
	say "  Point it at ds01's: ln -sfn $bindir/ds01-workloads $local_tool"
	say "  (the lab's deploy script links it to its bash tool again on every run: remove that step from it)."
}

case ${1:-} in
install)
	[ $# -eq 2 ] || {
		echo "usage: coexist install ROTATE_RULE" >&2
		exit 2
	}
	stop_old_scanner
	install_rotation "$2"
	warn_path
	;;
remove)
	[ $# -eq 2 ] || {
		echo "usage: coexist remove ROTATE_RULE" >&2
		exit 2
	}
	if unchanged "$ours"; then
		rm -f "$ours"
	elif [ -f "$ours" ]; then
		say "$ours was changed: kept."
	fi
	if [ -f "$dropin" ]; then
		rm -f "$dropin"
		rmdir "$(dirname "$dropin")" 2>/dev/null || true
		"$systemctl" daemon-reload >/dev/null 2>&1 || true
		say "detect-workloads.py may run again: systemctl enable --now $old_timer (see $old_timer's notes in the README first)."
	fi
	;;
*)
	echo "usage: coexist install|remove ROTATE_RULE" >&2
	exit 2
	;;
esac
exit 0
