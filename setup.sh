#!/usr/bin/env bash
# Prepare a fresh Debian 12 machine to develop, test and benchmark Dockyard: `sudo ./setup.sh`.
#
# Safe to run again: every step either checks before it acts or is idempotent by nature
# (apt-get install, pip install). Needs root because it installs system packages and configures
# the peer engines (podman, docker) the benchmarks compare against.
set -euo pipefail

cd "$(dirname "$(readlink -f "$0")")"

# The tests use real parts rather than mocks: a compiler and headers for btrfsutil, btrfs tools and
# busybox for offline images, the reference registry, the peer engines and their helpers, and
# hyperfine for quick manual timings.
SYSTEM_PACKAGES=(
    python3-venv python3-dev gcc libc6-dev libbtrfsutil-dev fuse-overlayfs
    btrfs-progs busybox-static attr uidmap
    runc tini catatonit golang-github-containers-common
    docker-registry skopeo umoci podman docker.io
    debootstrap hyperfine
    passt slirp4netns iperf3
)
VENV=.venv
# Debian's interpreter, not whatever `python3` resolves to on PATH (pyenv shims, ...): btrfsutil is
# compiled against Debian's headers.
SYSTEM_PYTHON=/usr/bin/python3
CONTAINERS_CONF=/etc/containers/containers.conf
CONTAINERS_DROPIN_DIR=/etc/containers/containers.conf.d
DOCKYARD_DROPIN="$CONTAINERS_DROPIN_DIR/dockyard-peers.conf"

log() { printf 'setup: %s\n' "$*"; }
die() { printf 'setup: error: %s\n' "$*" >&2; exit 1; }

require_root() {
    [[ "$(id -u)" -eq 0 ]] || die "run as root: sudo ./setup.sh"
}

warn_unless_bookworm() {
    # Package names and versions (libbtrfsutil 6.2, podman 4.3) are Debian 12's; elsewhere this may
    # still work, so only warn.
    local codename
    codename="$(sed -n 's/^VERSION_CODENAME=//p' /etc/os-release)"
    [[ "$codename" == bookworm ]] ||
        log "warning: written for Debian 12 (bookworm), found ${codename:-an unknown system}"
}

install_system_packages() {
    log "installing system packages"
    # No prompts (CI has no stdin): keep locally modified config files, and let needrestart only
    # list services instead of restarting them.
    export DEBIAN_FRONTEND=noninteractive NEEDRESTART_MODE=l
    apt-get update
    apt-get install -y \
        -o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold \
        "${SYSTEM_PACKAGES[@]}"
}

create_venv() {
    if [[ -x "$VENV/bin/python" ]]; then
        log "keeping existing $VENV"
        return
    fi
    log "creating $VENV with $SYSTEM_PYTHON"
    "$SYSTEM_PYTHON" -m venv "$VENV"
}

install_python_packages() {
    log "installing dockyard (editable) with its test extras"
    "$VENV/bin/pip" install --upgrade pip 'setuptools>=70.1'
    # The default editable mode installs an import finder that costs ~20 ms on every start; the
    # strict mode is a plain path entry to a tree of links. Linking the two package folders whole,
    # instead of file by file, makes new modules importable without reinstalling.
    "$VENV/bin/pip" install -e '.[test]' --config-settings editable_mode=strict
    local tree
    tree="$(ls -d "$PWD"/build/__editable__.dockyard-*/dockyard)"
    rm -rf "$tree/core" "$tree/plugins"
    ln -s "$PWD/core" "$tree/core"
    ln -s "$PWD/plugins" "$tree/plugins"
    # Byte-compile now: where PYTHONDONTWRITEBYTECODE is set, nothing would ever be cached and
    # every command would recompile the modules it imports.
    "$VENV/bin/python" -m compileall -q core plugins
}

# True when a containers.conf key is set (uncommented) in the main file or in a drop-in other than
# ours, i.e. when the user or another tool has already decided its value.
containers_conf_sets() {
    local key="$1" file
    local files=("$CONTAINERS_CONF" "$CONTAINERS_DROPIN_DIR"/*.conf)
    for file in "${files[@]}"; do
        [[ -f "$file" && "$file" != "$DOCKYARD_DROPIN" ]] || continue
        grep -qE "^[[:space:]]*${key}[[:space:]]*=" "$file" && return 0
    done
    return 1
}

configure_peer_engines() {
    # Root on this kind of host lacks CAP_SYS_RESOURCE, so podman's default (raise nofile/nproc to
    # the maximum) fails; pin limits a process may already have. runc is the runtime Debian ships
    # (podman prefers crun, which is not installed). podman 4.3 reads drop-ins from
    # containers.conf.d, so we own one file and never edit the user's containers.conf; a key the
    # user already set elsewhere is left out, since drop-ins override the main file.
    local engine="" containers=""
    containers_conf_sets runtime || engine='runtime = "runc"'
    containers_conf_sets default_ulimits ||
        containers='default_ulimits = ["nofile=4096:4096", "nproc=4096:4096"]'
    if [[ -z "$engine" && -z "$containers" ]]; then
        log "containers.conf already sets runtime and default_ulimits; leaving it alone"
        rm -f "$DOCKYARD_DROPIN"
        return
    fi
    log "writing $DOCKYARD_DROPIN"
    mkdir -p "$CONTAINERS_DROPIN_DIR"
    {
        echo "# Written by Dockyard's setup.sh for the peer benchmarks; delete to undo."
        [[ -z "$containers" ]] || printf '[containers]\n%s\n' "$containers"
        [[ -z "$engine" ]] || printf '[engine]\n%s\n' "$engine"
    } >"$DOCKYARD_DROPIN.tmp"
    mv "$DOCKYARD_DROPIN.tmp" "$DOCKYARD_DROPIN"
}

build_hello_world() {
    # The seeds' first command is `run hello-world`; without internet there is nothing to pull, so
    # the image is built here from source: one static binary FROM scratch (images/hello-world).
    log "building the hello-world image"
    gcc -static -Os -s -Wall -o images/hello-world/hello images/hello-world/hello.c
    "$VENV/bin/dockyard" build -q -t hello-world images/hello-world >/dev/null
}

main() {
    require_root
    warn_unless_bookworm
    install_system_packages
    create_venv
    install_python_packages
    configure_peer_engines
    build_hello_world
    log "done: run the tests with .venv/bin/pytest"
}

main "$@"
