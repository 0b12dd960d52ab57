# Shared by the study scripts: sourced, not run.

timed_to() {  # log, name, command...: run the command, append its wall time to the log
  # A command stopped part-way (a study resumed across restarts) counts all its attempts: while it
  # runs, its elapsed seconds so far are rewritten every BEAT seconds to a mark file beside the
  # log, which the next attempt starts from and which is removed once the command ends. The sum
  # misses at most BEAT seconds of each interrupted attempt.
  local log=$1 name=$2 prior=0 begin beat rc=0 attempts=1
  shift 2
  local mark="$log.${name// /_}.running"
  # MARKS: a folder for the mark files instead (one kept where the run's state is, so a command
  # resumed in another checkout counts the attempts made elsewhere too)
  [[ -z ${MARKS:-} ]] || { mkdir -p "$MARKS" && mark="$MARKS/${name// /_}.running"; }
  if [[ -f "$mark" ]]; then
    read -r prior attempts < "$mark"
    attempts=$((attempts + 1))
  fi
  begin=$(date +%s)
  echo "== $name: $*"
  local owner=$BASHPID  # the beat stops with the shell that runs the command, even a killed one
  (while sleep "${BEAT:-30}" && kill -0 "$owner" 2> /dev/null; do
    echo "$((prior + $(date +%s) - begin)) $attempts" > "$mark.part" && mv "$mark.part" "$mark"
  done) &> /dev/null &  # not holding the caller's output open after it is killed
  beat=$!
  "$@" || rc=$?
  kill "$beat" 2> /dev/null || true
  wait "$beat" 2> /dev/null || true
  local took=$((prior + $(date +%s) - begin)) note=""
  ((attempts == 1)) || note=" ($attempts attempts)"
  if ((rc == 0)); then
    echo "$(date '+%F %T') $name $took s$note: $*" >> "$log"
    rm -f "$mark"
  fi
  return "$rc"
}
