#!/usr/bin/env bash
# The Debian packages as an operator gets them: build (scripts/build-deb: dpkg-buildpackage
# and lintian), install an earlier build, edit its config, upgrade, run the server exactly
# as the installed unit says (systemd is not PID 1 in CI, so this script does what systemd
# would), a device and a backend through it, reload and stop, remove, purge.
#   package_test.sh SOURCE_DIR WORK_DIR
# Needs root: it installs packages and the package creates a system user. It refuses to
# run where iotsocket is installed already, and purges what it installed when it ends.
set -euo pipefail
source_dir=$(cd "$1" && pwd)
work=$2
started=$(date +%s)
checks=0

fail() {
  echo "package test: FAILED: $*" >&2
  exit 1
}
ok() {
  checks=$((checks + 1))
  echo "ok $checks - $*"
}
# wait_for SECONDS DESCRIPTION COMMAND...: polls COMMAND every 0.1 s, fails after SECONDS.
wait_for() {
  local seconds=$1 what=$2
  shift 2
  local deadline=$(($(date +%s) + seconds))
  until "$@"; do
    (($(date +%s) < deadline)) || fail "$what: not within ${seconds}s"
    sleep 0.1
  done
}

if ((EUID != 0)); then
  fail "the package test needs root (it runs dpkg -i and creates the iotsocket user).
  Run make test as root (CI does), or leave this test out: make test NO_PACKAGE_TEST=1
  (ctest -LE package)."
fi
if dpkg-query -W -f='${db:Status-Status}' iotsocket 2>/dev/null | grep -qv '^not-installed$'; then
  fail "the iotsocket package is installed on this machine; this test would purge it"
fi
if getent passwd iotsocket >/dev/null || [[ -e /etc/iotsocket || -e /var/lib/iotsocket ]]; then
  fail "user iotsocket, /etc/iotsocket or /var/lib/iotsocket exists without the package; remove them first"
fi

server_pid=
strace_pid=
reader_pid=
notify_pid=
notify_dir=
cleanup() {
  local code=$?
  # The server by its pid file too: its workers exit when the master is gone.
  local master_pid
  master_pid=$(cat /run/iotsocket/iotsocketd.pid 2>/dev/null || true)
  for pid in $server_pid $master_pid $strace_pid $reader_pid $notify_pid; do kill -KILL "$pid" 2>/dev/null || true; done
  sleep 0.5  # let the workers see their master gone before userdel looks for the user's processes
  if ((code != 0)) && [[ -f $work/server.log ]]; then
    echo "--- server log"
    cat "$work/server.log"
  fi
  dpkg --purge iotsocket libiotsocket-client-dev >/dev/null 2>&1 || true
  rm -rf /run/iotsocket /dev/shm/iotsocket ${notify_dir:+"$notify_dir"}
  exit "$code"
}
trap cleanup EXIT

# ---- build and lint ----
# PACKAGE_TEST_REUSE=1 keeps the packages of the previous run in WORK_DIR/deb (a developer
# iterating on this script); CI always builds.
if [[ ${PACKAGE_TEST_REUSE:-} == 1 && -d $work/deb ]]; then
  find "$work" -mindepth 1 -maxdepth 1 ! -name deb -exec rm -rf {} +
else
  rm -rf "$work"
  mkdir -p "$work"
  build_started=$(date +%s)
  "$source_dir/scripts/build-deb" "$work/deb" >"$work/build.log" 2>&1 || {
    tail -40 "$work/build.log"
    fail "scripts/build-deb (dpkg-buildpackage, lintian)"
  }
  echo "# package build and lintian: $(($(date +%s) - build_started)) s"
fi
version=$(sed -n 's/^project(iotsocket VERSION \([0-9.]*\).*/\1/p' "$source_dir/CMakeLists.txt")
arch=$(dpkg --print-architecture)
server_deb=$work/deb/iotsocket_${version}_$arch.deb
dev_deb=$work/deb/libiotsocket-client-dev_${version}_$arch.deb
[[ -f $server_deb && -f $dev_deb ]] || fail "expected $server_deb and $dev_deb; built: $(ls "$work/deb")"
ok "built iotsocket and libiotsocket-client-dev $version ($arch), lintian clean"

# An earlier build: the same package with a lower version (0.1.0~earlier sorts before
# 0.1.0), so that the second install is an upgrade with its maintainer scripts.
dpkg-deb -R "$server_deb" "$work/earlier"
sed -i "s/^Version: .*/Version: ${version}~earlier/" "$work/earlier/DEBIAN/control"
dpkg-deb --root-owner-group -b "$work/earlier" "$work/earlier.deb" >/dev/null

# ---- first install ----
dpkg -i "$work/earlier.deb" >"$work/install.log" 2>&1 || { cat "$work/install.log"; fail "dpkg -i (earlier build)"; }
cat "$work/install.log"
pin=$(grep -o 'sha256/[A-Za-z0-9+/=]*' "$work/install.log" | head -1)
[[ -n $pin ]] || fail "postinst printed no pin"
cert_pin=sha256/$(openssl x509 -in /etc/iotsocket/cert.pem -pubkey -noout |
  openssl pkey -pubin -outform der | openssl dgst -sha256 -binary | base64)
[[ $pin == "$cert_pin" ]] || fail "printed pin $pin is not the certificate's $cert_pin"
ok "first install made a certificate and printed its pin $pin"

getent passwd iotsocket | grep -q ':/var/lib/iotsocket:/usr/sbin/nologin$' ||
  fail "user iotsocket: $(getent passwd iotsocket)"
[[ $(id -gn iotsocket) == iotsocket ]] || fail "iotsocket's group is $(id -gn iotsocket)"
[[ $(stat -c '%U:%G %a' /etc/iotsocket/key.pem) == "root:iotsocket 640" ]] ||
  fail "key.pem: $(stat -c '%U:%G %a' /etc/iotsocket/key.pem)"
[[ $(stat -c '%U:%G %a' /var/lib/iotsocket) == "iotsocket:iotsocket 750" ]] ||
  fail "/var/lib/iotsocket: $(stat -c '%U:%G %a' /var/lib/iotsocket)"
[[ $(stat -c '%U' /var/lib/iotsocket/devices.db) == iotsocket ]] || fail "the registry is not iotsocket's"
openssl x509 -in /etc/iotsocket/cert.pem -noout -text | grep -q 'ASN1 OID: prime256v1' ||
  fail "the certificate is not ECDSA P-256"
ok "system user and group iotsocket, key root:iotsocket 0640, registry owned by iotsocket"

# The operator's local edit: loopback, a free port, two workers, a short drain.
port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
conf=/etc/iotsocket/iotsocket.yaml
sed -i -e "s/^  - {address: 0.0.0.0, port: 9000}$/  - {address: 127.0.0.1, port: $port}  # edited/" \
  -e 's/^workers: auto$/workers: 2/' -e 's/^  drain: 10s$/  drain: 1s/' "$conf"
grep -q "port: $port}  # edited" "$conf" && grep -q '^workers: 2$' "$conf" && grep -q '^  drain: 1s$' "$conf" ||
  fail "could not edit $conf (did packaging/iotsocket.yaml change?)"
edited_sum=$(sha256sum <"$conf")

# ---- upgrade ----
dpkg -i "$server_deb" "$dev_deb" >"$work/upgrade.log" 2>&1 || { cat "$work/upgrade.log"; fail "dpkg -i (upgrade)"; }
[[ $(dpkg-query -W -f='${Version}' iotsocket) == "$version" ]] || fail "upgrade: version $(dpkg-query -W -f='${Version}' iotsocket)"
[[ $(sha256sum <"$conf") == "$edited_sum" ]] || fail "upgrade changed the edited $conf"
[[ -z $(find /etc/iotsocket -name '*.dpkg-*') ]] || fail "upgrade left $(find /etc/iotsocket -name '*.dpkg-*')"
grep -q 'sha256/' "$work/upgrade.log" && fail "the upgrade made a new certificate"
[[ sha256/$(openssl x509 -in /etc/iotsocket/cert.pem -pubkey -noout | openssl pkey -pubin -outform der |
  openssl dgst -sha256 -binary | base64) == "$pin" ]] || fail "the upgrade changed the certificate"
ok "upgrade from ${version}~earlier to $version kept the edited config and the certificate"

# ---- what is installed ----
for f in /usr/sbin/iotsocketd /usr/bin/iotsocketctl /usr/bin/iotsocket-client /usr/bin/iotsocket-bench \
  /etc/iotsocket/iotsocket.yaml /lib/systemd/system/iotsocket.service \
  /usr/share/man/man8/iotsocketd.8.gz /usr/share/man/man1/iotsocketctl.1.gz \
  /usr/share/man/man1/iotsocket-client.1.gz /usr/share/man/man1/iotsocket-bench.1.gz; do
  dpkg -L iotsocket | grep -qx "$f" || fail "iotsocket does not install $f"
done
multiarch=$(dpkg-architecture -qDEB_HOST_MULTIARCH)
for f in /usr/include/iotsocket/client.hpp /usr/lib/$multiarch/libiotsocket-client.a \
  /usr/lib/$multiarch/cmake/iotsocket-client/iotsocket-client-config.cmake \
  /usr/lib/$multiarch/pkgconfig/iotsocket-client.pc; do
  dpkg -L libiotsocket-client-dev | grep -qx "$f" || fail "libiotsocket-client-dev does not install $f"
done
[[ $(dpkg-query -W -f='${Conffiles}' iotsocket | awk 'NF {print $1}') == /etc/iotsocket/iotsocket.yaml ]] ||
  fail "conffiles: $(dpkg-query -W -f='${Conffiles}' iotsocket)"
[[ $(iotsocketd --version) == "iotsocketd $version" ]] || fail "iotsocketd --version: $(iotsocketd --version)"
g++ -std=c++17 "$source_dir/client/examples/sensor_loop.cpp" $(pkg-config --cflags --libs iotsocket-client) \
  -o "$work/sensor_loop" || fail "the sensor loop example does not build against the installed library"
ok "file lists, the one conffile, the version, and a program built against the installed library"

# ---- the unit ----
unit=/lib/systemd/system/iotsocket.service
systemd-analyze verify "$unit" >"$work/verify.log" 2>&1 || { cat "$work/verify.log"; fail "systemd-analyze verify"; }
[[ ! -s $work/verify.log ]] || { cat "$work/verify.log"; fail "systemd-analyze verify printed warnings"; }
systemd-analyze security --offline=yes "$unit" >"$work/security.log" 2>&1 || true
exposure=$(sed -n 's/.*Overall exposure level for iotsocket.service: \([0-9.]*\).*/\1/p' "$work/security.log")
[[ -n $exposure ]] || { cat "$work/security.log"; fail "no exposure figure from systemd-analyze security"; }
echo "# systemd-analyze security --offline=yes: exposure $exposure"
awk -v e="$exposure" 'BEGIN { exit !(e <= 2.0) }' || { cat "$work/security.log"; fail "exposure $exposure > 2.0"; }
ok "systemd-analyze verify passes; security exposure $exposure <= 2.0"

# Settings of the [Service] section, as systemd reads them (the last assignment wins).
unit_value() { sed -n "s/^$1=//p" "$unit" | tail -1; }
user=$(unit_value User)
group=$(unit_value Group)
umask_value=$(unit_value UMask)
[[ $(unit_value Type) == notify && $user == iotsocket && $group == iotsocket ]] || fail "unit: Type, User or Group"
read -ra exec_start_pre <<<"$(unit_value ExecStartPre)"
read -ra exec_start <<<"$(unit_value ExecStart)"
exec_reload=$(unit_value ExecReload)
[[ ${exec_start[0]} == /* && ${exec_start_pre[0]} == /* ]] || fail "unit: ExecStart= with a prefix this test does not know"

# What systemd does before ExecStartPre: the runtime and state directories, owned by the user.
install -d -o "$user" -g "$group" -m "$(unit_value RuntimeDirectoryMode)" "/run/$(unit_value RuntimeDirectory)"
install -d -o "$user" -g "$group" -m "$(unit_value StateDirectoryMode)" "/var/lib/$(unit_value StateDirectory)"
# LimitNOFILE= as systemd sets it, where this machine lets root raise the hard limit (a
# container without CAP_SYS_RESOURCE does not: then the server runs with what there is).
nofile=$(unit_value LimitNOFILE)
limit=(prlimit --nofile="$nofile:$nofile")
if ! "${limit[@]}" true 2>/dev/null; then
  echo "# LimitNOFILE=$nofile cannot be applied here (hard limit $(ulimit -Hn)); the server warns about it"
  limit=()
fi
service=("${limit[@]}" setpriv --reuid="$user" --regid="$group" --init-groups
  --no-new-privs --inh-caps=-all bash -c "umask $umask_value && exec \"\$@\"" as_service)
as_service() { "${service[@]}" "$@"; }
# The backend: any user in group iotsocket (here nobody, with iotsocket as a supplementary group).
as_backend() {
  setpriv --reuid=nobody --regid=nogroup --groups="$(getent group iotsocket | cut -d: -f3)" "$@"
}

# Both run under strace: systemd is not here to apply the unit's seccomp filter, so the
# system calls they make are compared with it at the end.
trace=(strace -f -qq -o)
[[ $("${trace[@]}" "$work/strace-pre.txt" "${service[@]}" "${exec_start_pre[@]}") == "configuration OK" ]] ||
  fail "ExecStartPre: ${exec_start_pre[*]}"

# The readiness protocol: a datagram socket that the server's sd_notify() writes to.
notify_dir=$(mktemp -d)  # under /tmp: reachable by the service user wherever $work is
chmod 0755 "$notify_dir"
python3 -u - "$notify_dir/socket" >"$work/notify.log" <<'EOF' &
import os, socket, sys
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
s.bind(sys.argv[1])
os.chmod(sys.argv[1], 0o666)
print("listening")
while True:
    print(s.recv(4096).decode().replace("\n", " "))
EOF
notify_pid=$!
disown "$notify_pid"  # killed at the end; no job report in the log
wait_for 10 "notify socket" grep -q listening "$work/notify.log"

# strace exits with the server's status; the server is its child (prlimit, setpriv and
# bash each exec the next), and writes its own pid to the pid file.
NOTIFY_SOCKET=$notify_dir/socket "${trace[@]}" "$work/strace.txt" "${service[@]}" "${exec_start[@]}" \
  >"$work/server.log" 2>&1 &
strace_pid=$!
wait_for 30 "READY=1 from the server" grep -q 'READY=1' "$work/notify.log"
server_pid=$(cat /run/iotsocket/iotsocketd.pid)
[[ $(readlink "/proc/$server_pid/exe") == "${exec_start[0]}" && $(ps -o ppid= -p "$server_pid") -eq $strace_pid ]] ||
  fail "pid file: $server_pid is not the server started ($(ps -o pid,ppid,args -p "$server_pid"))"
((${#limit[@]} == 0)) || ! grep -q 'open-file limit' "$work/server.log" ||
  fail "LimitNOFILE=$nofile is too low for the default config"
for fifo in push inbound; do
  [[ -p /run/iotsocket/$fifo.fifo && $(stat -c '%U:%G %a' /run/iotsocket/$fifo.fifo) == "iotsocket:iotsocket 660" ]] ||
    fail "$fifo FIFO: $(stat -c '%F %U:%G %a' /run/iotsocket/$fifo.fifo)"
done
[[ $(stat -c '%U:%G %a' /dev/shm/iotsocket) == "iotsocket:iotsocket 660" ]] ||
  fail "shared memory: $(stat -c '%U:%G %a' /dev/shm/iotsocket)"
ok "started as $user with ExecStart (READY=1); FIFOs and shared memory iotsocket:iotsocket 0660"

# ---- a device and a backend ----
device=4242424242
key=$(iotsocketctl devices add "$device" 2>/dev/null | awk '{print $2}')
[[ -n $key ]] || fail "iotsocketctl devices add printed no key"
[[ $(stat -c '%U' /var/lib/iotsocket/devices.db) == iotsocket ]] || fail "root's devices add changed the registry's owner"
as_backend cat /run/iotsocket/inbound.fifo >"$work/inbound.txt" &
reader_pid=$!
disown "$reader_pid"
echo "temp=21.5" | timeout 60 iotsocket-client --host 127.0.0.1 --port "$port" --id "$device" \
  --key "$key" --pin "$pin" --count 1 >"$work/client.out" 2>"$work/client.err" &
client_pid=$!
wait_for 30 "the device's frame in the inbound FIFO" grep -q "^$device temp=21.5$" "$work/inbound.txt"
ok "device connected with the printed pin; its frame reached the backend through the inbound FIFO"

as_backend iotsocketctl status >"$work/status.txt" || fail "iotsocketctl status as a member of group iotsocket"
grep -q "$device" "$work/status.txt" || { cat "$work/status.txt"; fail "status does not show the device"; }
iotsocketctl status | grep -q "$device" || fail "iotsocketctl status as root"
as_backend bash -c "printf '%s led=on\n' $device >/run/iotsocket/push.fifo"
wait "$client_pid" || fail "iotsocket-client exit $? ($(cat "$work/client.err"))"
[[ $(cat "$work/client.out") == "led=on" ]] || fail "the device received '$(cat "$work/client.out")'"
ok "status as root and as a group member; a push from the backend reached the device"

# ---- reload and stop, as systemctl reload/stop do ----
reload=${exec_reload//\$MAINPID/$server_pid}
$reload
wait_for 30 "reload in the log" grep -q "SIGHUP: reloading" "$work/server.log"
wait_for 30 "RELOADING=1" grep -q 'RELOADING=1' "$work/notify.log"
wait_for 30 "READY=1 after the reload" bash -c "grep -c 'READY=1' '$work/notify.log' | grep -qx 2"
ok "ExecReload ($reload): the server reloaded"

kill -TERM "$server_pid"
wait_for 30 "exit after SIGTERM" bash -c "! kill -0 $server_pid 2>/dev/null"
set +e
wait "$strace_pid"
code=$?
set -e
server_pid=
((code == 0)) || fail "the server exited with $code after SIGTERM"
grep -q 'STOPPING=1' "$work/notify.log" || fail "no STOPPING=1"
kill "$reader_pid" 2>/dev/null || true
reader_pid=
rm -rf "/run/$(unit_value RuntimeDirectory)"  # systemd removes the RuntimeDirectory at stop
ok "SIGTERM: exit 0"

"$source_dir/tests/package/syscalls_allowed.py" "$unit" "${exec_start[0]}" "$work/strace-pre.txt" "$work/strace.txt" ||
  fail "the server made system calls that the unit's SystemCallFilter= refuses"
ok "every system call of the server (start, TLS, frames, push, status, reload, stop) is in SystemCallFilter="

# ---- remove keeps the state, purge removes everything ----
dpkg -r iotsocket libiotsocket-client-dev >"$work/remove.log" 2>&1 || { cat "$work/remove.log"; fail "dpkg -r"; }
[[ -f /var/lib/iotsocket/devices.db && -f /etc/iotsocket/key.pem && -f $conf ]] || fail "dpkg -r removed state"
getent passwd iotsocket >/dev/null || fail "dpkg -r removed the user"
ok "remove keeps the registry, the certificate, the config and the user"

dpkg --purge iotsocket libiotsocket-client-dev >"$work/purge.log" 2>&1 || { cat "$work/purge.log"; fail "dpkg --purge"; }
for path in /etc/iotsocket /var/lib/iotsocket /run/iotsocket /dev/shm/iotsocket; do
  [[ ! -e $path ]] || fail "purge left $path: $(ls -la "$path")"
done
! getent passwd iotsocket >/dev/null || fail "purge left the user iotsocket"
! getent group iotsocket >/dev/null || fail "purge left the group iotsocket"
[[ $(dpkg-query -W -f='${db:Status-Status}' iotsocket 2>/dev/null || echo not-installed) == not-installed ]] ||
  fail "dpkg still knows iotsocket"
ok "purge leaves no user, group, /etc/iotsocket, /var/lib/iotsocket, /run/iotsocket or /dev/shm/iotsocket"

echo "# package test: $(($(date +%s) - started)) s"
echo "$checks passed, 0 failed"
