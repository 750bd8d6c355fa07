# Sourced by ci/test and ci/main.
# run CMD...: echo and run CMD; stop the script with its status if it fails. pytest's "no tests
# collected" (5) is a failure, never a pass: a filter that selects nothing must not go green.
run() {
  echo "+ $*"
  "$@"
  local rc=$?
  if [ "$rc" -eq 5 ]; then
    echo "$(basename "$0"): pytest collected no tests for: $*" >&2
    exit 1
  fi
  [ "$rc" -eq 0 ] || exit "$rc"
}
