#!/usr/bin/env bash
# The package's version is the project's: the newest entry of packaging/debian/changelog
# must name project(VERSION). The package build checks it too, but only where it runs
# (root); this runs in every `ctest -L unit`, so a version bump without a changelog entry
# fails at once.
#   changelog_version.sh SOURCE_DIR PROJECT_VERSION
set -euo pipefail
changelog=$1/packaging/debian/changelog
entry=$(head -1 "$changelog")
if [[ $entry != "iotsocket ($2) "* ]]; then
  echo "$changelog: the newest entry is '$entry', but CMakeLists.txt says project(VERSION $2);"
  echo "add a changelog entry for $2 (dpkg-parsechangelog and the package build read it)"
  exit 1
fi
echo "packaging/debian/changelog and project(VERSION) agree: $2"
