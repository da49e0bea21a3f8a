#!/usr/bin/env bash
# install.sh: what `make install` and `make uninstall` do (and `make deb`,
# which installs into a staging DESTDIR with PREFIX=/usr).
#
#   deploy/install.sh install|uninstall|list
#
# Settings come from the environment (the Makefile passes them):
#   PREFIX=/usr/local  DESTDIR=  SYSCONFDIR=/etc  BUILD=bin
#   BINDIR MANDIR DOCDIR DATADIR LIBDIR UNITDIR TMPFILESDIR BASHCOMPDIR
#   ZSHCOMPDIR: derived from PREFIX unless set.
# BUILD holds what `make build man completion` made: ds01-scan,
# ds01-workloads, man/, completion/.
#
# install records every file it wrote and every directory it had to create in
# DOCDIR/install-manifest; uninstall removes exactly those (directories only
# when empty) and leaves /var/lib/ds01, /var/log/ds01 and /run/ds01 alone.
# Only when DESTDIR is empty and systemd is running (/run/systemd/system)
# does either touch systemd: daemon-reload and enable --now ds01-scan.timer,
# or disable --now and daemon-reload. With DESTDIR empty, both run coexist
# (deploy/coexist.sh): the lab's detect-workloads.py timer stopped, a
# logrotate rule where the lab has none, and back.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)

die() {
	echo "install.sh: $*" >&2
	exit 1
}

PREFIX=${PREFIX:-/usr/local}
PREFIX=${PREFIX%/}
[ -n "$PREFIX" ] || PREFIX=/usr
case $PREFIX in /*) ;; *) die "PREFIX must be absolute: $PREFIX" ;; esac
DESTDIR=${DESTDIR:-}
SYSCONFDIR=${SYSCONFDIR:-/etc}
BUILD=${BUILD:-bin}
BINDIR=${BINDIR:-$PREFIX/bin}
MANDIR=${MANDIR:-$PREFIX/share/man}
DOCDIR=${DOCDIR:-$PREFIX/share/doc/ds01}
DATADIR=${DATADIR:-$PREFIX/share/ds01}
LIBDIR=${LIBDIR:-$PREFIX/lib/ds01}
BASHCOMPDIR=${BASHCOMPDIR:-$PREFIX/share/bash-completion/completions}
# systemd looks for units and tmpfiles.d in /usr/lib and /usr/local/lib (see
# `systemd-analyze unit-paths`), and in /etc for any other prefix.
case $PREFIX in
/usr | /usr/local)
	UNITDIR=${UNITDIR:-$PREFIX/lib/systemd/system}
	TMPFILESDIR=${TMPFILESDIR:-$PREFIX/lib/tmpfiles.d}
	;;
*)
	UNITDIR=${UNITDIR:-$SYSCONFDIR/systemd/system}
	TMPFILESDIR=${TMPFILESDIR:-$SYSCONFDIR/tmpfiles.d}
	;;
esac
# Debian's zsh looks in vendor-completions for packages and in
# /usr/local/share/zsh/site-functions for the admin's own.
if [ "$PREFIX" = /usr ]; then
	ZSHCOMPDIR=${ZSHCOMPDIR:-/usr/share/zsh/vendor-completions}
else
	ZSHCOMPDIR=${ZSHCOMPDIR:-$PREFIX/share/zsh/site-functions}
fi
MANIFEST=$DOCDIR/install-manifest

# files: every file install writes, as "MODE SOURCE DESTINATION". A source
# starting with @unit is generated from deploy/ds01-scan.service.in.
files() {
	cat <<-EOF
		0755 $BUILD/ds01-scan $BINDIR/ds01-scan
		0755 $BUILD/ds01-workloads $BINDIR/ds01-workloads
		0644 @unit $UNITDIR/ds01-scan.service
		0644 $here/ds01-scan.timer $UNITDIR/ds01-scan.timer
		0644 $here/tmpfiles.conf $TMPFILESDIR/ds01.conf
		0644 $here/logrotate $DATADIR/logrotate
		0755 $here/coexist.sh $LIBDIR/coexist
		0644 $BUILD/man/ds01-scan.8.gz $MANDIR/man8/ds01-scan.8.gz
		0644 $BUILD/man/ds01-workloads.1.gz $MANDIR/man1/ds01-workloads.1.gz
		0644 $BUILD/completion/bash/ds01-scan $BASHCOMPDIR/ds01-scan
		0644 $BUILD/completion/bash/ds01-workloads $BASHCOMPDIR/ds01-workloads
		0644 $BUILD/completion/zsh/_ds01-scan $ZSHCOMPDIR/_ds01-scan
		0644 $BUILD/completion/zsh/_ds01-workloads $ZSHCOMPDIR/_ds01-workloads
		0644 $here/../README.md $DOCDIR/README.md
		0644 $here/examples/textfile.conf $DOCDIR/examples/textfile.conf
		0644 $here/examples/nss-network.conf $DOCDIR/examples/nss-network.conf
		0644 $here/prometheus/ds01-rules.yml $DOCDIR/examples/prometheus/ds01-rules.yml
		0644 $here/grafana/ds01.json $DOCDIR/examples/grafana/ds01.json
	EOF
}

systemd_running() {
	[ -z "$DESTDIR" ] && [ -d /run/systemd/system ]
}

# mkdirs DIR: create DIR and its missing parents under DESTDIR, recording
# each one created in the manifest (parents first).
mkdirs() {
	local dir=$1 missing=() d
	d=$dir
	while [ -n "$d" ] && [ "$d" != / ] && [ ! -d "$DESTDIR$d" ]; do
		missing=("$d" "${missing[@]}")
		d=$(dirname "$d")
	done
	for d in "${missing[@]}"; do
		install -d -m 0755 "$DESTDIR$d"
		echo "d $d" >>"$manifest_tmp"
	done
}

cmd_install() {
	local mode src dst unit
	if [ ! -x "$BUILD/ds01-scan" ] || [ ! -x "$BUILD/ds01-workloads" ]; then
		die "no binaries in $BUILD (run make build man completion first)"
	fi
	[ -f "$BUILD/man/ds01-scan.8.gz" ] || die "no man pages in $BUILD/man (run make man)"
	[ -f "$BUILD/completion/bash/ds01-scan" ] || die "no completions in $BUILD/completion (run make completion)"

	# A previous install's manifest: its directories are still ours.
	manifest_tmp=$(mktemp)
	trap 'rm -f -- "$manifest_tmp" "${unit:-}"' EXIT
	if [ -f "$DESTDIR$MANIFEST" ]; then
		grep '^d ' "$DESTDIR$MANIFEST" >>"$manifest_tmp" || true
	fi

	unit=$(mktemp)
	sed -e "s|@BINDIR@|$BINDIR|g" -e "s|@DOCDIR@|$DOCDIR|g" "$here/ds01-scan.service.in" >"$unit"
	if grep -q '@[A-Z]*@' "$unit"; then
		die "ds01-scan.service: unfilled template variable: $(grep -o '@[A-Z]*@' "$unit" | head -n 1)"
	fi

	while read -r mode src dst; do
		[ "$src" = @unit ] && src=$unit
		mkdirs "$(dirname "$dst")"
		install -m "$mode" "$src" "$DESTDIR$dst"
		echo "f $dst" >>"$manifest_tmp"
	done < <(files)
	echo "f $MANIFEST" >>"$manifest_tmp"
	# Directories first, each once, in creation order.
	{
		grep '^d ' "$manifest_tmp" | awk '!seen[$0]++'
		grep '^f ' "$manifest_tmp"
	} >"$DESTDIR$MANIFEST"
	chmod 0644 "$DESTDIR$MANIFEST"
	echo "installed ds01 under ${DESTDIR:-}$PREFIX (list: $DESTDIR$MANIFEST)"

	if [ -z "$DESTDIR" ]; then
		ETC=$SYSCONFDIR BINDIR=$BINDIR "$LIBDIR/coexist" install "$DATADIR/logrotate"
	fi
	if systemd_running; then
		systemctl daemon-reload
		systemd-tmpfiles --create ds01.conf
		systemctl enable --now ds01-scan.timer
		echo "ds01-scan.timer enabled and started: systemctl list-timers ds01-scan.timer"
	elif [ -z "$DESTDIR" ]; then
		echo "systemd is not running: enable the timer when it is (systemctl enable --now ds01-scan.timer)"
	fi
}

cmd_uninstall() {
	local kind path dirs=()
	if systemd_running; then
		systemctl disable --now ds01-scan.timer 2>/dev/null || true
		systemctl stop ds01-scan.service 2>/dev/null || true
		systemctl reset-failed ds01-scan.service ds01-scan.timer 2>/dev/null || true
	fi
	if [ -z "$DESTDIR" ] && [ -x "$LIBDIR/coexist" ]; then
		ETC=$SYSCONFDIR "$LIBDIR/coexist" remove "$DATADIR/logrotate"
	fi
	if [ -f "$DESTDIR$MANIFEST" ]; then
		while read -r kind path; do
			case $kind in
			f) rm -f -- "$DESTDIR$path" ;;
			d) dirs=("$path" "${dirs[@]}") ;;
			esac
		done <"$DESTDIR$MANIFEST"
	else
		# Installed by an older make install, or the manifest was lost:
		# the files this version installs, and ds01's own directories.
		echo "install.sh: no $DESTDIR$MANIFEST; removing the files this version installs" >&2
		while read -r _ _ path; do
			rm -f -- "$DESTDIR$path"
		done < <(files)
		dirs=("$DOCDIR/examples/prometheus" "$DOCDIR/examples/grafana" "$DOCDIR/examples" "$DOCDIR" "$DATADIR" "$LIBDIR")
	fi
	# Deepest first; a directory that holds anything else stays.
	for path in "${dirs[@]}"; do
		rmdir -- "$DESTDIR$path" 2>/dev/null || true
	done
	if systemd_running; then
		systemctl daemon-reload
	fi
	echo "removed ds01 from ${DESTDIR:-}$PREFIX (state in /var/lib/ds01 and logs in /var/log/ds01 are kept)"
}

case ${1:-} in
install) cmd_install ;;
uninstall) cmd_uninstall ;;
list) files | awk '{ print $3 }' ;;
*)
	echo "usage: install.sh install|uninstall|list" >&2
	exit 2
	;;
esac
