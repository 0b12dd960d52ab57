# Shared by the study scripts: sourced, not run.

timed_to() {  # log, name, command...: run the command, append its wall time to the log
  local log=$1 name=$2 start=$SECONDS
  shift 2
  echo "== $name: $*"
  "$@"
  echo "$(date '+%F %T') $name $((SECONDS - start)) s: $*" >> "$log"
}
