# Shared helpers for the scripts in this folder. Source it; do not run it.
# shellcheck shell=bash

# Installs libclang (needed by rusqlite's `session` feature, whose bindings are generated at
# build time) when it is missing: apt-get as root or through sudo, otherwise one clear line.
ensure_libclang() {
    if [ -n "${LIBCLANG_PATH:-}" ] || ldconfig -p 2>/dev/null | grep -q 'libclang[-.0-9]*\.so' \
        || ls /usr/lib/llvm-*/lib/libclang*.so* >/dev/null 2>&1; then
        return 0
    fi
    echo "eventsync: libclang is missing (rusqlite's session feature needs it); installing libclang-dev" >&2
    local sudo=""
    if [ "$(id -u)" != 0 ]; then
        if command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
            sudo="sudo"
        else
            echo "eventsync: cannot install libclang-dev without root; install it (apt-get install libclang-dev) or set LIBCLANG_PATH" >&2
            return 1
        fi
    fi
    if ! command -v apt-get >/dev/null 2>&1; then
        echo "eventsync: no apt-get here; install libclang with your package manager or set LIBCLANG_PATH" >&2
        return 1
    fi
    $sudo apt-get update -qq && DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq libclang-dev >/dev/null
}
