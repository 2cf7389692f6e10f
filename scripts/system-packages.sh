#!/usr/bin/env bash
# The one package modelhub needs from the OS: bubblewrap (`bwrap`), the jail every model runs in.
# As root it is installed with apt when missing; otherwise this says how, and `modelhub up` refuses
# to run models until it is there (or runs them UNSEALED with --allow-unsealed).
set -euo pipefail
if command -v bwrap >/dev/null; then
  exit 0
fi
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
  echo "installing bubblewrap (the models' jail) with apt-get"
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq bubblewrap >/dev/null
else
  echo "NOTE: bubblewrap is missing; models run only in its jail. Ask an administrator for it" >&2
  echo "      (Debian/Ubuntu: sudo apt-get install bubblewrap), or use \`modelhub up --allow-unsealed\`." >&2
fi
