# shellcheck shell=bash
# lib.sh: the setup shared by scripts/cluster, scripts/test and scripts/bench:
# install missing Debian build dependencies and build raftkv out of tree.
# Sourced, never executed. Must never delete anything outside build dirs
# and never install anything that is not a Debian package.

RKV_TOP=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
RKV_DEPS=(build-essential autoconf automake pkg-config libmicrohttpd-dev
          libjansson-dev libcurl4-openssl-dev libsqlite3-dev libgnutls28-dev libcrypt-dev python3 curl jq
          iptables openssl etcd-server python3-etcd3gw python3-tooz python3-testtools
          python3-oslotest)
RKV_APT_UPDATED=0

rkv_say() { printf '%s\n' "$*" >&2; }
rkv_die() { rkv_say "error: $*"; exit 1; }

# Prints the packages among "$@" that are not installed. Without dpkg (not
# Debian) it falls back to pkg-config for libraries and PATH for tools.
rkv_missing_packages() {
    local p
    for p in "$@"; do
        if command -v dpkg >/dev/null 2>&1; then
            dpkg -s "$p" >/dev/null 2>&1 && continue
        else
            case $p in
            libmicrohttpd-dev) pkg-config --exists libmicrohttpd && continue ;;
            libjansson-dev) pkg-config --exists jansson && continue ;;
            libcurl4-openssl-dev) pkg-config --exists libcurl && continue ;;
            libsqlite3-dev) pkg-config --exists sqlite3 && continue ;;
            libgnutls28-dev) pkg-config --exists gnutls && continue ;;
            libcrypt-dev) pkg-config --exists libxcrypt && continue ;;
            build-essential) command -v cc >/dev/null && command -v make >/dev/null && continue ;;
            autoconf) command -v autoreconf >/dev/null && continue ;;
            *) command -v "$p" >/dev/null 2>&1 && continue ;;
            esac
        fi
        printf '%s\n' "$p"
    done
}

# Installs the given Debian packages if any is missing: as root with
# apt-get (one `apt-get update`, only when something must be installed),
# otherwise prints the exact command to run and exits.
rkv_install_packages() {
    local missing
    missing=$(rkv_missing_packages "$@" | tr '\n' ' ')
    missing=${missing% }
    [ -z "$missing" ] && return 0
    if [ "$(id -u)" != 0 ]; then
        rkv_say "missing packages: $missing"
        rkv_say "run: sudo apt-get install -y $missing"
        exit 1
    fi
    command -v apt-get >/dev/null 2>&1 || rkv_die "missing packages ($missing) and no apt-get"
    rkv_say "installing: $missing"
    if [ "$RKV_APT_UPDATED" = 0 ]; then
        DEBIAN_FRONTEND=noninteractive apt-get update -qq >&2 || rkv_die "apt-get update failed"
        RKV_APT_UPDATED=1
    fi
    # shellcheck disable=SC2086
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $missing >&2 ||
        rkv_die "apt-get install failed: $missing"
}

# Configures (if needed) and builds into build dir $1 (relative to the top)
# with configure arguments "${@:2}". Reconfigures when the arguments changed,
# so build/ and build-asan/ never mix flags.
rkv_build() {
    local dir=$RKV_TOP/$1; shift
    local want="$*" have=""
    if [ ! -x "$RKV_TOP/configure" ]; then
        rkv_say "generating configure (autoreconf -fi)"
        (cd "$RKV_TOP" && autoreconf -fi) >&2 || rkv_die "autoreconf failed"
    fi
    mkdir -p "$dir"
    if [ -x "$dir/config.status" ]; then
        have=$("$dir/config.status" --config 2>/dev/null | tr -d "'")
    fi
    if [ ! -f "$dir/Makefile" ] || [ "$have" != "$want" ]; then
        rkv_say "configuring $dir ($want)"
        (cd "$dir" && "$RKV_TOP/configure" "$@") >"$dir/configure.out" 2>&1 || {
            tail -n 20 "$dir/configure.out" >&2
            rkv_die "configure failed (log: $dir/configure.out)"
        }
    fi
    rkv_say "building in $dir (log: $dir/make.out)"
    make -C "$dir" -j2 >"$dir/make.out" 2>&1 || {
        grep -E 'error|Error' "$dir/make.out" | head -n 20 >&2
        tail -n 20 "$dir/make.out" >&2
        rkv_die "build failed in $dir (log: $dir/make.out)"
    }
}

# Succeeds when the raftkv node whose client address is HOST:PORT ($1)
# says it leads (scripts/bench and scripts/bench-vs-etcd find the leader so).
rkv_is_leader() {
    curl -s -m 2 "http://$1/status" |
        python3 -c 'import json,sys; s=json.load(sys.stdin); sys.exit(s["leader"] != s["member_id"])'
}

# The one entry point: dependencies, then a normal build into build/.
rkv_setup() {
    rkv_install_packages "${RKV_DEPS[@]}"
    rkv_build build
}
