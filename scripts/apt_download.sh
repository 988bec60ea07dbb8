# Sourced by the set-up scripts: apt_download DIR PACKAGE... downloads the packages' .deb files
# into DIR without installing them. A fresh machine has no package lists yet; as root, fetch them
# once and retry. Needs fail() from the caller.
apt_download() {
    local dir=$1
    shift
    command -v apt-get >/dev/null && command -v dpkg-deb >/dev/null \
        || fail "needs apt-get and dpkg-deb (Debian/Ubuntu) to download $*"
    chmod 755 "$dir"  # apt's unprivileged _apt user downloads into it
    if ! (cd "$dir" && apt-get download -q "$@" >"$dir/apt.log" 2>&1); then
        [[ $EUID -eq 0 ]] || fail "apt-get download $* failed: $(tail -n1 "$dir/apt.log") (run 'apt-get update' as root first)"
        apt-get update -q >"$dir/apt.log" 2>&1 || fail "apt-get update failed: $(tail -n1 "$dir/apt.log")"
        (cd "$dir" && apt-get download -q "$@" >"$dir/apt.log" 2>&1) \
            || fail "apt-get download $* failed: $(tail -n1 "$dir/apt.log")"
    fi
}
