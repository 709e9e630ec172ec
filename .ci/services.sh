#!/usr/bin/env bash
# System packages for the tests that use real services, installed with apt-get only when missing:
#   chromium, chromium-driver  tests/test_ui_browser.py drives /usr/bin/chromium headless through
#                              /usr/bin/chromedriver (selenium) against `mlflow server`
#   postgresql                 tests/test_postgres_server.py runs initdb / pg_ctl from
#                              /usr/lib/postgresql/*/bin; it starts its own throwaway cluster on
#                              127.0.0.1 and its own `mlflow server`, and stops both at the end
# Nothing is started here. Under CI (CI=true) a package that cannot be installed is an error;
# elsewhere it is a warning, and those tests skip.
set -euo pipefail

missing=()
command -v chromium >/dev/null 2>&1 || missing+=(chromium)
command -v chromedriver >/dev/null 2>&1 || missing+=(chromium-driver)
compgen -G "/usr/lib/postgresql/*/bin/initdb" >/dev/null || command -v initdb >/dev/null 2>&1 \
    || missing+=(postgresql)

if ((${#missing[@]} == 0)); then
    echo "services: chromium, chromedriver and PostgreSQL are installed"
    exit 0
fi

ci=false
case "${CI:-}" in "" | 0 | false | False | FALSE | no) ;; *) ci=true ;; esac

sudo=()
can_install=false
if command -v apt-get >/dev/null 2>&1; then
    if [[ $(id -u) -eq 0 ]]; then
        can_install=true
    elif command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
        sudo=(sudo -n)
        can_install=true
    fi
fi

give_up() {
    echo "services: $1" >&2
    if $ci; then exit 1; fi
    echo "services: the browser / PostgreSQL tests will skip" >&2
    exit 0
}

$can_install || give_up "cannot install ${missing[*]} (needs apt-get as root or passwordless sudo)"

echo "services: installing ${missing[*]} with apt-get"
start=$SECONDS
log=$(mktemp)
apt=("${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get -q -y -o Dpkg::Use-Pty=0)
if ! { "${apt[@]}" update && "${apt[@]}" install --no-install-recommends "${missing[@]}"; } \
        </dev/null >"$log" 2>&1; then
    tail -n 30 "$log" >&2
    rm -f "$log"
    give_up "apt-get could not install ${missing[*]}"
fi
rm -f "$log"
echo "services: installed ${missing[*]} in $((SECONDS - start)) s"
