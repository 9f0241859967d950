#!/usr/bin/env bash
# Build, once, an emulated Raspberry Pi OS 64-bit userland for `make test-pi`, under .cache/pi/:
#
#   rootfs/          Debian arm64 (bookworm: python3.11, glibc 2.36, as Raspberry Pi OS 64-bit bookworm),
#                    made with `debootstrap --foreign` and unpacked with dpkg-deb: nothing is emulated here.
#   wheels/ site/    aarch64 wheels of the edge runtime's dependencies, pinned to the versions installed in
#                    the host Python when it has them (so x86 and aarch64 runs differ only in architecture),
#                    and the same wheels installed into a plain directory for PYTHONPATH.
#   prefix-pi4/ prefix-pi5/
#                    qemu -L prefixes: symlinks to the rootfs plus a Raspberry Pi 4 / 5 /proc/cpuinfo
#                    (ai-edge-litert's CPU detection crashes on the host's x86 cpuinfo).
#
# Idempotent: each step is skipped while its stamp file matches its inputs. Settings (environment):
#   PI_CACHE_DIR    cache folder (default: <repo>/.cache/pi)
#   PI_SUITE        Debian suite (default: bookworm)
#   PI_MIRROR       Debian mirror (default: the first Debian mirror in /etc/apt/sources*, else deb.debian.org)
#   PI_HOST_PYTHON  host Python whose pip downloads the wheels and whose versions are pinned
#                   (default: <repo>/.venv/bin/python, else python3)
#   PI_PACKAGES     distributions to install (default: numpy ai-edge-litert pymicro-features soundfile)
set -euo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
PI_DIR=$REPO/tests/pi
CACHE=${PI_CACHE_DIR:-$REPO/.cache/pi}
SUITE=${PI_SUITE:-bookworm}
PACKAGES=${PI_PACKAGES:-numpy ai-edge-litert pymicro-features soundfile}
# Packages beyond minbase: the interpreter and its standard library.
DEB_INCLUDE=python3
ROOTFS=$CACHE/rootfs

die() {
    echo "make_rootfs.sh: $*" >&2
    exit 2
}

log() {
    echo "make_rootfs.sh: $*" >&2
}

default_mirror() {
    local url
    url=$(cat /etc/apt/sources.list /etc/apt/sources.list.d/* 2>/dev/null | grep -v '^[[:space:]]*#' \
        | grep -oE 'https?://[^ ]+/debian/?( |$)' | head -n1 | tr -d ' ' || true)
    echo "${url:-http://deb.debian.org/debian}"
}

host_python() {
    if [[ -n ${PI_HOST_PYTHON:-} ]]; then
        echo "$PI_HOST_PYTHON"
    elif [[ -x $REPO/.venv/bin/python ]]; then
        echo "$REPO/.venv/bin/python"
    else
        command -v python3 || die "no host python3 found (set PI_HOST_PYTHON)"
    fi
}

check_tools() {
    local tool missing=()
    for tool in qemu-aarch64-static debootstrap dpkg-deb; do
        command -v "$tool" >/dev/null || missing+=("$tool")
    done
    if ((${#missing[@]})); then
        die "missing ${missing[*]}; on Debian/Ubuntu: sudo apt-get install qemu-user-static debootstrap"
    fi
}

# Run as root: debootstrap refuses to run otherwise. Uses sudo -n when not root.
as_root() {
    if ((EUID == 0)); then
        "$@"
    elif command -v sudo >/dev/null && sudo -n true 2>/dev/null; then
        sudo -n "$@"
    else
        die "building the rootfs needs root (debootstrap); run once: sudo bash tests/pi/make_rootfs.sh"
    fi
}

# Run the emulated interpreter (any ARMv8 CPU model will do for this).
emulated_python() {
    QEMU_CPU=cortex-a72 PYTHONPATH= qemu-aarch64-static -L "$ROOTFS" "$ROOTFS/usr/bin/python3" "$@"
}

build_rootfs() {
    local mirror=${PI_MIRROR:-$(default_mirror)}
    local stamp="suite=$SUITE include=$DEB_INCLUDE"
    if [[ -f $ROOTFS/.pi-rootfs && $(cat "$ROOTFS/.pi-rootfs") == "$stamp" ]]; then
        return
    fi
    local tmp=$CACHE/rootfs.tmp keyring=/usr/share/keyrings/debian-archive-keyring.gpg
    [[ -f $keyring ]] || die "missing $keyring; install the debian-archive-keyring package"
    log "debootstrap $SUITE arm64 from $mirror"
    as_root rm -rf "$tmp"
    # --foreign: download and unpack only; the configure stage would need the emulator and is not needed.
    as_root debootstrap --arch=arm64 --variant=minbase --foreign --keyring="$keyring" --include="$DEB_INCLUDE" \
        "$SUITE" "$tmp" "$mirror" >"$CACHE/debootstrap.log" 2>&1 \
        || die "debootstrap failed, see $CACHE/debootstrap.log"
    # --foreign leaves the --include'd packages (python3 ...) packed: unpack every downloaded .deb.
    local deb
    for deb in "$tmp"/var/cache/apt/archives/*.deb; do
        as_root dpkg-deb -x "$deb" "$tmp"
    done
    as_root rm -f "$tmp"/var/cache/apt/archives/*.deb
    if ((EUID != 0)); then
        as_root chown -R "$(id -u):$(id -g)" "$tmp"
    fi
    [[ -x $tmp/usr/bin/python3 ]] || die "no python3 in the $SUITE rootfs"
    echo "$stamp" >"$tmp/.pi-rootfs"
    rm -rf "$ROOTFS"
    mv "$tmp" "$ROOTFS"
}

# The qemu -L prefix for one Pi model: the rootfs's folders (except the kernel-provided ones, which stay
# the host's) plus proc/cpuinfo.
make_prefix() {
    local model=$1 prefix=$CACHE/prefix-pi$1 entry name
    mkdir -p "$prefix/proc"
    for entry in "$ROOTFS"/*; do
        name=$(basename "$entry")
        case $name in dev | proc | sys | run | tmp) continue ;; esac
        [[ -L $prefix/$name ]] || ln -s "../rootfs/$name" "$prefix/$name"
    done
    cmp -s "$PI_DIR/cpuinfo/pi$model.txt" "$prefix/proc/cpuinfo" \
        || cp "$PI_DIR/cpuinfo/pi$model.txt" "$prefix/proc/cpuinfo"
}

# "name==version" for each package the host Python has installed, plain "name" otherwise.
pinned_requirements() {
    "$1" - $PACKAGES <<'EOF'
import sys
from importlib import metadata

for name in sys.argv[1:]:
    try:
        print(f"{name}=={metadata.version(name)}")
    except metadata.PackageNotFoundError:
        print(name)
EOF
}

build_site() {
    local python pyver glibc reqs platforms=() minor stamp
    python=$(host_python)
    read -r pyver glibc < <(emulated_python -c \
        'import platform, sys; print(f"{sys.version_info[0]}.{sys.version_info[1]}", platform.libc_ver()[1])')
    mapfile -t reqs < <(pinned_requirements "$python")
    stamp="python=$pyver glibc=$glibc requirements=${reqs[*]}"
    if [[ -f $CACHE/site/.pi-site && $(cat "$CACHE/site/.pi-site") == "$stamp" ]]; then
        return
    fi
    # pip matches --platform tags literally: list every manylinux tag the rootfs's glibc satisfies.
    for ((minor = ${glibc#*.}; minor >= 17; minor--)); do
        platforms+=(--platform "manylinux_2_${minor}_aarch64")
    done
    platforms+=(--platform manylinux2014_aarch64)
    local target=(--only-binary=:all: "${platforms[@]}" --python-version "$pyver" --implementation cp)
    log "aarch64 wheels for python $pyver, glibc $glibc: ${reqs[*]}"
    "$python" -m pip download --quiet "${target[@]}" -d "$CACHE/wheels" "${reqs[@]}" \
        || die "pip download of the aarch64 wheels failed"
    rm -rf "$CACHE/site.tmp"
    "$python" -m pip install --quiet --no-index --find-links "$CACHE/wheels" "${target[@]}" \
        --target "$CACHE/site.tmp" "${reqs[@]}" || die "installing the aarch64 wheels failed"
    echo "$stamp" >"$CACHE/site.tmp/.pi-site"
    rm -rf "$CACHE/site"
    mv "$CACHE/site.tmp" "$CACHE/site"
}

main() {
    check_tools
    mkdir -p "$CACHE"
    build_rootfs
    make_prefix 4
    make_prefix 5
    build_site
    # Run with sudo: leave the cache to the user who asked for it.
    if ((EUID == 0)) && [[ -n ${SUDO_UID:-} ]]; then
        chown -R "$SUDO_UID:${SUDO_GID:-$SUDO_UID}" "$CACHE"
    fi
    log "ready: $CACHE ($(cat "$ROOTFS/.pi-rootfs"); $(cat "$CACHE/site/.pi-site"))"
}

main "$@"
