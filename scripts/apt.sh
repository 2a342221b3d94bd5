# Sourced by bootstrap.sh and test.sh: apt_install PACKAGE... (as root).
# On a fresh machine apt is often busy (unattended-upgrades at boot, another
# install): wait for its locks, up to 10 minutes, instead of failing at once.
# DPkg::Lock::Timeout covers dpkg's lock; `apt-get update`'s lists lock ignores
# it (apt 2.6), so a busy lock is also retried here.
apt_install() {
  local log try
  log=$(mktemp)
  for try in $(seq 1 120); do
    if { apt-get -o DPkg::Lock::Timeout=600 update -qq &&
         DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=600 \
           install -y -qq --no-install-recommends "$@"; } >"$log" 2>&1; then
      rm -f "$log"; return 0
    fi
    grep -qE "Could not get lock|Unable to lock|Unable to acquire" "$log" || break
    [ "$try" = 1 ] && echo "apt is busy (another install?); waiting for its lock" >&2
    sleep 5
  done
  cat "$log" >&2; rm -f "$log"; return 1
}
