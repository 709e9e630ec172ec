#!/usr/bin/env bash
# README set-up command 1, verbatim, as a newcomer runs it: in a new virtual environment, in a
# copy of this checkout (so its store and artifacts land there, not in the checkout). The command
# is read from README.md, so what is tested is what the README says.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
command_1="$(grep -A1 '^# 1\. install and run the quickstart' "$root/README.md" | tail -n 1)"
[[ "$command_1" == python* ]] || { echo "first-contact: README command 1 not found" >&2; exit 1; }
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
git -C "$root" ls-files -z | (cd "$root" && xargs -0 cp --parents -t "$work") 2>/dev/null \
    || cp -r "$root/." "$work"
python -m venv "$work/.venv"
echo "first-contact: $command_1"
(cd "$work" && PATH="$work/.venv/bin:$PATH" && unset PYTHONPATH VIRTUAL_ENV && bash -c "$command_1")
test -s "$work/mlruns.db" || { echo "first-contact: the quickstart wrote no store" >&2; exit 1; }
echo "first-contact: README command 1 passed in a new virtual environment"
