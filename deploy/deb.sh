#!/usr/bin/env bash
# deb.sh: what `make deb` does after `make build man completion`: install the
# tree into a staging directory with PREFIX=/usr, then package it with nfpm
# (deploy/nfpm.yaml). Prints the path of the .deb on the last line.
#
# Environment: BUILD (bin), VERSION (git describe), NFPM (the nfpm command),
# GOARCH (the Go target architecture; Debian's names agree for amd64, arm64).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

BUILD=${BUILD:-bin}
VERSION=${VERSION:-$(git describe --tags --always --dirty 2>/dev/null || echo dev)}
NFPM=${NFPM:-go run github.com/goreleaser/nfpm/v2/cmd/nfpm@v2.45.2}
GOARCH=${GOARCH:-$(go env GOARCH)}

die() {
	echo "deb.sh: $*" >&2
	exit 1
}

# A Debian version must start with a digit: v1.2.3[-4-gSHA][-dirty] becomes
# 1.2.3[+4.gSHA][+dirty]; an untagged tree is 0.0.0+git.SHA.
debian_version() {
	local v=$1
	if [[ $v =~ ^v?[0-9]+\.[0-9]+ ]]; then
		v=${v#v}
	else
		v=0.0.0+git.$v
	fi
	# Only [A-Za-z0-9.+~]: '-' would start a Debian revision.
	v=${v/-dirty/+dirty}
	v=${v/-/+}
	v=${v//-/.}
	echo "$v"
}

# The newest glibc symbol version ds01-scan needs (it is the only binary
# linked against libc).
libc_min() {
	local tool
	if command -v objdump >/dev/null; then
		tool=(objdump -T)
	elif command -v readelf >/dev/null; then
		tool=(readelf --dyn-syms -W)
	else
		die "objdump or readelf needed to find the glibc version (apt-get install binutils)"
	fi
	"${tool[@]}" "$BUILD/ds01-scan" | grep -o 'GLIBC_[0-9][0-9.]*' | sed 's/GLIBC_//' | sort -uV | tail -n 1
}

root=$(realpath -m "$BUILD/deb-root")
rm -rf -- "$root"
mkdir -p -- "$root"
DESTDIR=$root PREFIX=/usr BUILD=$BUILD bash deploy/install.sh install >/dev/null
# dpkg keeps its own list of the package's files.
rm -f -- "$root/usr/share/doc/ds01/install-manifest"

DEB_LIBC=$(libc_min)
[ -n "$DEB_LIBC" ] || die "cannot tell which glibc $BUILD/ds01-scan needs"
DEB_VERSION=$(debian_version "$VERSION")
DEB_ARCH=$GOARCH
export DS01_DEB_ROOT=$root DEB_VERSION DEB_ARCH DEB_LIBC
out=$BUILD/ds01_${DEB_VERSION}_${DEB_ARCH}.deb
rm -f -- "$out"
# nfpm expands ${VARIABLES} in most fields but walks a tree's source before
# it does: put the staging root in by hand.
config=$BUILD/nfpm.yaml
sed "s|\${DS01_DEB_ROOT}|$root|g" deploy/nfpm.yaml >"$config"
# shellcheck disable=SC2086 # NFPM is a command line
$NFPM package --config "$config" --packager deb --target "$out" >&2
echo "$out"
