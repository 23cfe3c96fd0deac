# Shared helpers for the scripts in this folder. Source it; do not run it.
# shellcheck shell=bash

# --- libclang ---------------------------------------------------------------------------------
#
# rusqlite's `session` feature generates its SQLite bindings at build time with bindgen, which
# loads libclang through clang-sys. These helpers find libclang exactly as clang-sys does and
# install it where it is missing.
#
# clang-sys (build/common.rs, build/dynamic.rs, version 1.9) accepts the file names
# `libclang.so`, `libclang-*.so`, `libclang.so.*` and `libclang-*.so.*`, and skips any name
# that contains "-cpp." (`libclang-cpp.so.14` is LLVM's C++ library, which many images carry
# without libclang). It searches, in order: only `LIBCLANG_PATH` when that is set (a folder, or
# the library file itself); otherwise `llvm-config --prefix` (bin, lib, lib64),
# `LD_LIBRARY_PATH`, `LIBRARY_PATH`, and the folders `/usr/local/llvm*/lib*`,
# `/usr/local/lib*/*/*`, `/usr/local/lib*/*`, `/usr/local/lib*`, `/usr/lib*/*/*`, `/usr/lib*/*`
# and `/usr/lib*`. We also look in the folders of the ld cache (`ldconfig -p`); a library found
# only there is handed to clang-sys through `LIBCLANG_PATH`.
#
# LIBCLANG_SYSROOT (tests only) is prepended to every fixed system folder, so that a test can
# build a fake machine in a temporary folder.

# Prints the first file in folder $1 that clang-sys would load as libclang; fails if none.
libclang_in_dir() {
    local dir="$1" file name
    [ -d "$dir" ] || return 1
    for file in "$dir"/libclang.so "$dir"/libclang-*.so "$dir"/libclang.so.* "$dir"/libclang-*.so.*; do
        [ -e "$file" ] || continue # an unmatched glob, or a dangling symlink
        name="${file##*/}"
        case "$name" in *-cpp.*) continue ;; esac
        echo "$file"
        return 0
    done
    return 1
}

# Prints the folders clang-sys searches when LIBCLANG_PATH is unset, one a line, in its order.
clang_sys_search_dirs() {
    local root="${LIBCLANG_SYSROOT:-}" prefix dir pattern
    if command -v llvm-config >/dev/null 2>&1 && prefix="$(llvm-config --prefix 2>/dev/null)"; then
        prefix="$(printf '%s\n' "$prefix" | head -n 1)"
        [ -n "$prefix" ] && printf '%s\n' "$prefix/bin" "$prefix/lib" "$prefix/lib64"
    fi
    local IFS=:
    for dir in ${LD_LIBRARY_PATH:-} ${LIBRARY_PATH:-}; do
        [ -n "$dir" ] && printf '%s\n' "$dir"
    done
    unset IFS
    # The fixed folders. A glob that matches nothing stays literal and fails the -d test.
    for pattern in "$root"/usr/local/llvm*/lib* "$root"/usr/local/lib*/*/* "$root"/usr/local/lib*/* \
        "$root"/usr/local/lib* "$root"/usr/lib*/*/* "$root"/usr/lib*/* "$root"/usr/lib*; do
        [ -d "$pattern" ] && printf '%s\n' "$pattern"
    done
    return 0
}

# Prints the folders of the libraries in the ld cache that look like libclang.
libclang_ld_cache_dirs() {
    local ldconfig
    ldconfig="$(command -v ldconfig || true)"
    [ -n "$ldconfig" ] || { [ -x /sbin/ldconfig ] && ldconfig=/sbin/ldconfig; } || return 0
    "$ldconfig" -p 2>/dev/null | awk '$1 ~ /^libclang/ && $1 !~ /-cpp\./ { print $NF }' |
        while read -r file; do dirname "$file"; done | awk '!seen[$0]++'
}

# Prints the path of the libclang that bindgen would load, or fails. With LIBCLANG_PATH set, only
# that place counts, as in clang-sys.
find_libclang() {
    local dir
    if [ -n "${LIBCLANG_PATH:-}" ]; then
        if [ -f "$LIBCLANG_PATH" ]; then
            case "${LIBCLANG_PATH##*/}" in
                *-cpp.*) return 1 ;;
                libclang.so | libclang-*.so | libclang.so.* | libclang-*.so.*) echo "$LIBCLANG_PATH" ;;
                *) return 1 ;;
            esac
            return 0
        fi
        libclang_in_dir "$LIBCLANG_PATH"
        return
    fi
    while read -r dir; do
        libclang_in_dir "$dir" && return 0
    done < <(clang_sys_search_dirs; libclang_ld_cache_dirs)
    return 1
}

# True when clang-sys finds folder $1 without LIBCLANG_PATH (it is in clang-sys's own search).
libclang_dir_searched_by_clang_sys() {
    grep -qxF -- "$1" < <(clang_sys_search_dirs)
}

# The PyPI wheel `libclang` ships libclang.so without clang's own headers; bindgen then needs
# the C compiler's builtin headers (stdarg.h, stddef.h) for sqlite3.h.
LIBCLANG_WHEEL_VERSION="${EVENTSYNC_LIBCLANG_WHEEL_VERSION:-18.1.1}"

# Installs PyPI's `libclang` wheel into .build/libclang (no root, no apt). Prints its folder.
install_libclang_wheel() {
    local root target tmp
    root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
    target="$root/.build/libclang"
    if [ -f "$target/clang/native/libclang.so" ]; then
        echo "$target/clang/native"
        return 0
    fi
    command -v python3 >/dev/null 2>&1 && python3 -m pip --version >/dev/null 2>&1 || return 1
    tmp="$target.tmp.$$"
    rm -rf "$tmp"
    mkdir -p "$root/.build"
    python3 -m pip install --quiet --disable-pip-version-check --no-deps --target "$tmp" \
        "libclang==$LIBCLANG_WHEEL_VERSION" >&2 || {
        rm -rf "$tmp"
        return 1
    }
    rm -rf "$target"
    mv "$tmp" "$target"
    echo "$target/clang/native"
}

# Points bindgen at a libclang in folder $1 that has no clang headers of its own.
use_libclang_without_headers() {
    export LIBCLANG_PATH="$1"
    local include
    include="$(cc -print-file-name=include 2>/dev/null || gcc -print-file-name=include 2>/dev/null || true)"
    if [ -n "$include" ] && [ -d "$include" ]; then
        export BINDGEN_EXTRA_CLANG_ARGS="${BINDGEN_EXTRA_CLANG_ARGS:+$BINDGEN_EXTRA_CLANG_ARGS }-isystem $include"
    fi
}

# Makes sure bindgen finds a libclang: detects it as clang-sys would; where it is missing,
# installs libclang-dev with apt-get (as root or through sudo), or else PyPI's libclang wheel
# into .build/. Says in one line what it did.
ensure_libclang() {
    local found dir root
    root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
    if found="$(find_libclang)"; then
        dir="$(dirname "$found")"
        if [ -z "${LIBCLANG_PATH:-}" ] && ! libclang_dir_searched_by_clang_sys "$dir"; then
            export LIBCLANG_PATH="$dir"
        fi
        return 0
    fi
    if [ -z "${LIBCLANG_PATH:-}" ] && [ -f "$root/.build/libclang/clang/native/libclang.so" ]; then
        use_libclang_without_headers "$root/.build/libclang/clang/native"
        return 0
    fi
    if [ -n "${LIBCLANG_PATH:-}" ]; then
        echo "eventsync: LIBCLANG_PATH=$LIBCLANG_PATH holds no libclang that bindgen loads (libclang.so, libclang-N.so, libclang.so.N; not libclang-cpp)" >&2
        return 1
    fi
    local sudo="" can_apt=0
    if command -v apt-get >/dev/null 2>&1; then
        if [ "$(id -u)" = 0 ]; then
            can_apt=1
        elif command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
            sudo="sudo"
            can_apt=1
        fi
    fi
    if [ "$can_apt" = 1 ]; then
        echo "eventsync: libclang is missing (rusqlite's session feature needs it); installing libclang-dev with apt-get" >&2
        if $sudo apt-get update -qq >/dev/null &&
            DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq libclang-dev >/dev/null &&
            found="$(find_libclang)"; then
            dir="$(dirname "$found")"
            libclang_dir_searched_by_clang_sys "$dir" || export LIBCLANG_PATH="$dir"
            return 0
        fi
        echo "eventsync: apt-get could not install libclang-dev; trying PyPI's libclang wheel instead" >&2
    fi
    echo "eventsync: libclang is missing and apt-get cannot install it here; installing PyPI's libclang==$LIBCLANG_WHEEL_VERSION into .build/libclang" >&2
    if dir="$(install_libclang_wheel)"; then
        use_libclang_without_headers "$dir"
        return 0
    fi
    echo "eventsync: could not install libclang; install it (apt-get install libclang-dev) or set LIBCLANG_PATH to the folder of libclang.so" >&2
    return 1
}

# --- the summary of a test run ----------------------------------------------------------------
#
# A test that cannot run here (no S3 server, no Docker engine) returns early, and cargo's test
# harness counts it as passed. So it appends `{test}: {reason}` to the file that
# EVENTSYNC_TEST_NOT_RUN_FILE names (eventsync_backends::conformance::report_not_run), and the
# summary counts it as skipped, not passed, and lists it with its reason.

# Prints `P passed, F failed, S skipped` for the cargo test output in file $1, where the tests
# listed in the not-run file $2 count as skipped (with the ignored ones), not as passed.
cargo_test_totals() {
    local output="$1" not_run_file="$2" not_run=0
    [ -s "$not_run_file" ] && not_run="$(not_run_tests "$not_run_file" | wc -l)"
    awk -v not_run="$not_run" '/^test result:/ {
            for (i = 1; i <= NF; i++) {
                if ($i ~ /^passed;?$/) p += $(i - 1)
                if ($i ~ /^failed;?$/) f += $(i - 1)
                if ($i ~ /^ignored;?$/) s += $(i - 1)
            }
        } END {
            # A not-run test returned early, so cargo counted it as passed.
            if (not_run > p) not_run = p
            printf "%d passed, %d failed, %d skipped", p - not_run, f, s + not_run
        }' "$output"
}

# Prints the names of the tests in the not-run file $1, each once, sorted.
not_run_tests() {
    awk '{ i = index($0, ": "); if (i > 0) print substr($0, 1, i - 1) }' "$1" | sort -u
}

# Prints the not-run file $1 as a list grouped by reason, indented by $2: each reason with the
# number of tests, then the tests. Prints nothing when the file is empty or missing.
print_not_run() {
    local file="$1" indent="${2:-}"
    [ -s "$file" ] || return 0
    awk -v indent="$indent" '{
            i = index($0, ": ")
            if (i == 0) next
            test = substr($0, 1, i - 1); reason = substr($0, i + 2)
            if (seen[test]++) next
            if (!(reason in count)) order[++reasons] = reason
            count[reason]++
            tests[reason] = tests[reason] indent "    " test "\n"
        } END {
            for (r = 1; r <= reasons; r++) {
                reason = order[r]
                printf "%s%d not run: %s\n%s", indent, count[reason], reason, tests[reason]
            }
        }' "$file"
}

# --- Chromium, for the LiveStore browser test ---------------------------------------------------
#
# Makes sure Debian's Chromium is at $CHROMIUM (default /usr/bin/chromium): where it is missing,
# installs the packages chromium and chromium-driver with apt-get (as root or through sudo).
# Returns 1, after saying why on stderr, when it is still missing.
ensure_chromium() {
    local chromium="${CHROMIUM:-/usr/bin/chromium}" sudo=""
    [ -x "$chromium" ] && return 0
    if [ -n "${CHROMIUM:-}" ]; then
        echo "eventsync: CHROMIUM=$CHROMIUM is not an executable file" >&2
        return 1
    fi
    if ! command -v apt-get >/dev/null 2>&1; then
        echo "eventsync: Chromium is missing at $chromium and there is no apt-get to install it" >&2
        return 1
    fi
    if [ "$(id -u)" != 0 ]; then
        if command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
            sudo="sudo"
        else
            echo "eventsync: Chromium is missing at $chromium; apt-get needs root (or sudo) to install it" >&2
            return 1
        fi
    fi
    echo "eventsync: Chromium is missing (the LiveStore browser test needs it); installing chromium and chromium-driver with apt-get" >&2
    if $sudo apt-get update -qq >/dev/null &&
        DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq chromium chromium-driver >/dev/null &&
        [ -x "$chromium" ]; then
        return 0
    fi
    echo "eventsync: apt-get could not install chromium (see above); $chromium is missing" >&2
    return 1
}
