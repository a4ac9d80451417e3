# tests/deploy/docker_engine.sh - sourced (after lib.sh) by the tests that need a Docker
# engine: docker_test.sh (the image) and fresh_machine.sh (make test on a bare Debian 12).
#
# A private engine: its own socket, exec root and pid file under $tmp, so a system Docker
# (if any) is neither used nor disturbed; no bridge and no iptables rules, so the host's
# network is left as it is and containers use the host's network namespace. There is no
# registry: the base image debian:bookworm-slim is made with debootstrap from the Debian
# mirror apt already uses. The image and the engine's layers are cached in $cache
# (.cache/docker/ by default, which git ignores; CONVSCOPE_DOCKER_CACHE puts it elsewhere;
# remove it to measure a cold run). One engine at a time uses a cache.
#
# The caller sets $tmp (its temporary folder) and $cache, and calls engine_stop from its
# EXIT trap after removing its containers.
# shellcheck shell=bash disable=SC2154
dockerd_pid=

# engine_packages PKG...: installs docker.io, debootstrap and the given packages when missing.
engine_packages() {
  local missing=() p
  for p in docker.io debootstrap "$@"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
  done
  [ ${#missing[@]} -eq 0 ] && return 0
  note "installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  { apt-get install -y -q --no-install-recommends "${missing[@]}" ||
    { apt-get update -q && apt-get install -y -q --no-install-recommends "${missing[@]}"; }; } \
    >"$tmp/apt.log" 2>&1 || { tail -n 20 "$tmp/apt.log"; die "apt-get install ${missing[*]}"; }
}

engine_start() {
  mkdir -p "$cache/data"
  exec 9>"$cache/.lock"
  flock -n 9 || die "another test runs a Docker engine on $cache"
  export DOCKER_HOST=unix://$tmp/docker.sock
  dockerd --bridge=none --iptables=false --ip-forward=false --ip-masq=false \
    --host "$DOCKER_HOST" --exec-root "$tmp/exec" --pidfile "$tmp/docker.pid" \
    --data-root "$cache/data" >"$tmp/dockerd.log" 2>&1 9>&- &
  dockerd_pid=$!
  for _ in $(seq 120); do
    docker info >/dev/null 2>&1 && break
    kill -0 "$dockerd_pid" 2>/dev/null || break
    sleep 0.5
  done
  docker info >/dev/null 2>&1 || { tail -n 20 "$tmp/dockerd.log"; die "dockerd did not start"; }
  pass "dockerd started ($(docker version -f '{{.Server.Version}}'))"
}

engine_stop() {
  [ -n "$dockerd_pid" ] || return 0
  kill "$dockerd_pid" 2>/dev/null
  # dockerd stops the containerd it started; give both a bounded time.
  for _ in $(seq 100); do kill -0 "$dockerd_pid" 2>/dev/null || break; sleep 0.2; done
  kill -9 "$dockerd_pid" 2>/dev/null
  wait "$dockerd_pid" 2>/dev/null
  dockerd_pid=
  # The engine leaves its network-namespace mount behind; unmount what it left in $tmp.
  awk -v t="$tmp" 'index($2, t) == 1 {print $2}' /proc/mounts | sort -r | xargs -r umount -l
}

# apt_uri PATTERN [NOT]: the first URI of apt's sources (one-line or deb822) that matches
# PATTERN and not NOT, so no other host than apt's own mirror is contacted.
apt_uri() {
  cat /etc/apt/sources.list /etc/apt/sources.list.d/*.list /etc/apt/sources.list.d/*.sources 2>/dev/null |
    grep -oE '(URIs:[[:space:]]*|^deb[[:space:]]+(\[[^]]*\][[:space:]]+)?)[a-z]+://[^[:space:]]+' |
    grep -oE '[a-z]+://[^[:space:]]+' | grep -E "$1" | grep -vE "${2:-^$}" | head -n 1 || true
}

# base_image: debian:bookworm-slim, made locally with debootstrap --variant=minbase and
# shaped like Debian's slim image (no documentation, no package lists or caches).
base_image() {
  if ! docker image inspect debian:bookworm-slim >/dev/null 2>&1; then
    if [ ! -s "$cache/bookworm-minbase.tar" ]; then
      local mirror security rootfs=$tmp/rootfs
      mirror=$(apt_uri '/debian/?$' 'security'); mirror=${mirror:-http://deb.debian.org/debian}
      security=$(apt_uri 'security'); security=${security:-http://deb.debian.org/debian-security}
      note "debootstrap bookworm from $mirror"
      debootstrap --variant=minbase bookworm "$rootfs" "$mirror" >"$tmp/debootstrap.log" 2>&1 ||
        { tail -n 20 "$tmp/debootstrap.log"; die "debootstrap bookworm"; }
      # Shape it like Debian's slim image: no documentation, no package caches, the same
      # three suites in one deb822 file.
      mkdir -p "$rootfs/etc/dpkg/dpkg.cfg.d"
      printf '%s\n' 'path-exclude /usr/share/doc/*' 'path-include /usr/share/doc/*/copyright' \
        'path-exclude /usr/share/man/*' 'path-exclude /usr/share/info/*' \
        'path-exclude /usr/share/locale/*' 'path-include /usr/share/locale/locale.alias' \
        'path-exclude /usr/share/lintian/*' >"$rootfs/etc/dpkg/dpkg.cfg.d/docker"
      printf '%s\n' 'APT::Install-Recommends "false";' >"$rootfs/etc/apt/apt.conf.d/docker-no-recommends"
      rm -f "$rootfs/etc/apt/sources.list"
      cat >"$rootfs/etc/apt/sources.list.d/debian.sources" <<EOF
Types: deb
URIs: $mirror
Suites: bookworm bookworm-updates
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg

Types: deb
URIs: $security
Suites: bookworm-security
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
EOF
      find "$rootfs/usr/share/doc" -mindepth 2 ! -name copyright -type f -delete 2>/dev/null || true
      rm -rf "$rootfs"/usr/share/man/* "$rootfs"/usr/share/info/* "$rootfs"/var/cache/apt/*.bin \
        "$rootfs"/var/cache/apt/archives/*.deb "$rootfs"/var/lib/apt/lists/* "$rootfs"/tmp/* \
        "$rootfs"/var/log/*.log
      find "$rootfs/usr/share/locale" -mindepth 1 -maxdepth 1 ! -name locale.alias -exec rm -rf {} +
      tar -C "$rootfs" --numeric-owner -cf "$cache/bookworm-minbase.tar.part" . &&
        mv "$cache/bookworm-minbase.tar.part" "$cache/bookworm-minbase.tar"
    fi
    docker import --change 'CMD ["bash"]' "$cache/bookworm-minbase.tar" debian:bookworm-slim >/dev/null ||
      die "docker import of the base image"
  fi
  pass "base image debian:bookworm-slim ($(docker image inspect -f '{{.Size}}' debian:bookworm-slim | awk '{printf "%.0f MB", $1/1e6}'))"
}
