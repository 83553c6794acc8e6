#!/usr/bin/env bash
# Make sure the browsers foxden drives are installed; apt-get them if we can.
# Usage: ensure-browsers.sh [--no-firefox]   (or FOXDEN_SKIP_FIREFOX=1)
# Safe to run repeatedly: it does nothing when both browsers are present.
set -euo pipefail

CHROMIUM_PATHS=(/usr/bin/chromium /usr/bin/chromium-browser /usr/bin/google-chrome)
# The same places foxden/engines.py looks.
FIREFOX_PATHS=(/usr/lib/firefox-esr/firefox-esr /usr/lib/firefox/firefox)

want_firefox=1
[[ "${FOXDEN_SKIP_FIREFOX:-}" == 1 ]] && want_firefox=0
for arg in "$@"; do
    case "$arg" in
        --no-firefox) want_firefox=0 ;;
        *) echo "usage: $0 [--no-firefox]" >&2; exit 2 ;;
    esac
done

say() { echo "ensure-browsers: $*" >&2; }

# Prints the first executable among its arguments; fails if there is none.
first_executable() {
    local path
    for path in "$@"; do
        if [[ -x "$path" ]]; then
            echo "$path"
            return 0
        fi
    done
    return 1
}

# Reports each browser and collects the Debian packages of the missing ones.
missing=()
check() {
    local label=$1 package=$2 found
    shift 2
    if found=$(first_executable "$@"); then
        say "$label: $found"
    else
        say "$label: not found (looked at $*)"
        missing+=("$package")
    fi
}

check_all() {
    missing=()
    check chromium chromium "${CHROMIUM_PATHS[@]}"
    if (( want_firefox )); then
        check firefox firefox-esr "${FIREFOX_PATHS[@]}"
    else
        say "firefox: skipped"
    fi
}

check_all
(( ${#missing[@]} == 0 )) && exit 0

if [[ $EUID -ne 0 ]] || ! command -v apt-get >/dev/null; then
    say "missing ${missing[*]}; as root on Debian/Ubuntu, run:"
    say "  apt-get update && apt-get install -y ${missing[*]}"
    [[ " ${missing[*]} " == *" firefox-esr "* ]] && say "(or skip firefox: --no-firefox or FOXDEN_SKIP_FIREFOX=1)"
    exit 1
fi

say "installing ${missing[*]} with apt-get"
apt-get update -qq
DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}"

# A package can install without providing these paths (Ubuntu's chromium is
# a snap stub), so look again rather than trust apt's exit status.
check_all
if (( ${#missing[@]} )); then
    say "apt-get installed ${missing[*]} but the browser is still not where foxden looks"
    exit 1
fi
