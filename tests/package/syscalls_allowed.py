#!/usr/bin/env python3
"""Checks that every system call a traced program made is allowed by a unit's SystemCallFilter=.

    syscalls_allowed.py UNIT_FILE PROGRAM STRACE_LOG...

systemd is not PID 1 in CI, so the package test cannot run the service under its seccomp
filter; it runs the server under `strace -f` instead and this script compares. The filter is
read as systemd reads it: the first allow list, then each `~` line removes from it; groups
(@system-service) are expanded with `systemd-analyze syscall-filter`. Only the calls of
PROGRAM (from its execve on) and of the processes it forks count. Prints the calls seen and
exits 1 when any is outside the filter.
"""
import re
import subprocess
import sys

LINE = re.compile(r"^(\d+)\s+(?:<\.\.\. ([a-z0-9_]+) resumed>|([a-z0-9_]+)\()(.*)$")
RESULT = re.compile(r"=\s+(\d+)\s*$")


def filter_groups():
    text = subprocess.run(["systemd-analyze", "syscall-filter"], check=True,
                          capture_output=True, text=True).stdout
    groups, current = {}, None
    for line in text.splitlines():
        if line.startswith("@"):
            current = groups.setdefault(line.strip(), [])
        elif current is not None and line.strip() and not line.strip().startswith("#"):
            current.append(line.strip())
    return groups


def expand(names, groups):
    calls = set()
    for name in names:
        calls |= expand(groups[name], groups) if name.startswith("@") else {name}
    return calls


def allowed_calls(unit_file, groups):
    allowed = None
    for line in open(unit_file, encoding="utf-8"):
        if not line.startswith("SystemCallFilter="):
            continue
        value = line.split("=", 1)[1].strip()
        if value.startswith("~"):
            allowed -= expand(value[1:].split(), groups)
        elif allowed is None:
            allowed = expand(value.split(), groups)
        else:
            allowed |= expand(value.split(), groups)
    if allowed is None:
        sys.exit(f"{unit_file}: no SystemCallFilter=")
    return allowed


def calls_made(program, logs):
    inside, calls = set(), set()
    for log in logs:
        for line in open(log, encoding="utf-8", errors="replace"):
            match = LINE.match(line)
            if not match:
                continue
            pid, name, rest = match.group(1), match.group(2) or match.group(3), match.group(4)
            if name == "execve" and rest.startswith(f'"{program}"'):
                inside.add(pid)
                continue
            if pid not in inside:
                continue
            calls.add(name)
            child = RESULT.search(rest)
            if name in ("clone", "clone3", "fork", "vfork") and child:
                inside.add(child.group(1))
    return inside, calls


def main():
    unit_file, program, logs = sys.argv[1], sys.argv[2], sys.argv[3:]
    allowed = allowed_calls(unit_file, filter_groups())
    processes, calls = calls_made(program, logs)
    if not calls:
        sys.exit(f"no system calls of {program} in {' '.join(logs)}")
    refused = sorted(calls - allowed)
    print(f"{len(calls)} system calls of {program} in {len(processes)} processes: {' '.join(sorted(calls))}")
    if refused:
        print(f"outside the unit's SystemCallFilter=: {' '.join(refused)}")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
