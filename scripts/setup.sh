#!/usr/bin/env bash
# Installs everything chaos needs to build and test, idempotently; seconds when all is present.
#   apt: llvm-22-dev (for bpf-linker), iproute2, bpftool, ping, iperf3, python3, nsenter;
#        protobuf-compiler (the CRI client's generated code); containerd, runc and
#        containernetworking-plugins for the Kubernetes tests (started by the tests themselves);
#        dnsmasq-base (the resolver the DNS tests start); prometheus (the server and promtool
#        the agent tests scrape and lint with) and prometheus-pushgateway (`chaos run
#        --pushgateway` pushes to it); python3-junitparser (reads `chaos run --junit` as CI
#        systems do); kubectl (renders deploy/);
#        qemu, busybox-static, cpio, kmod, zstd, xz for the VM runner; gcc, make, bc, flex,
#        bison, libelf-dev, libssl-dev, dwarves to build the VM kernel with kprobe override
#   rust: rust-src (to build core for bpfel-unknown-none), bpf-linker 0.13.0 built for LLVM 22
set -euo pipefail
log() { echo "setup: $*" >&2; }

APT_PKGS=(llvm-22-dev iproute2 bpftool iputils-ping iperf3 iptables python3 util-linux bsdutils procps ethtool
  protobuf-compiler containerd runc containernetworking-plugins curl dnsmasq-base prometheus
  prometheus-pushgateway python3-junitparser
  qemu-system-x86 busybox-static cpio kmod zstd xz-utils
  gcc make bc flex bison libelf-dev libssl-dev dwarves)
missing=()
for p in "${APT_PKGS[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
# kubectl (its built-in kustomize renders deploy/ in a test): Debian's, unless one is there.
command -v kubectl >/dev/null || missing+=(kubernetes-client)
if [ ${#missing[@]} -gt 0 ]; then
  [ "$(id -u)" = 0 ] || { log "need root to apt-get install ${missing[*]}"; exit 1; }
  log "apt-get install ${missing[*]}"
  apt-get update -q >/dev/null
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${missing[@]}" >/dev/null
fi

export PATH="$HOME/.cargo/bin:$PATH"
if ! rustup component list --installed 2>/dev/null | grep -q '^rust-src'; then
  log "rustup component add rust-src"
  rustup component add rust-src >/dev/null
fi

if ! bpf-linker --version 2>/dev/null | grep -q '0\.13\.0'; then
  log "cargo install bpf-linker 0.13.0 against LLVM 22 (about a minute)"
  # Without LLVM_PREFIX it finds Debian's default llvm-config (LLVM 14) and fails to link.
  LLVM_PREFIX=/usr/lib/llvm-22 cargo install bpf-linker --version 0.13.0 --locked \
    --no-default-features --features llvm-22 -q
fi

# Pinning and bpftool's view of pins need bpffs; it is not mounted on these machines by default.
if ! mountpoint -q /sys/fs/bpf 2>/dev/null && [ "$(id -u)" = 0 ]; then
  mount -t bpf bpf /sys/fs/bpf 2>/dev/null || log "could not mount bpffs at /sys/fs/bpf (continuing)"
fi
log "ready"
