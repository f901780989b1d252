#!/bin/sh
# loom's container shim: keeps one container's `runc run` company for the container's whole life and
# outlives the daemon. Started by src/runtime/runc.ts in a session of its own (setsid), stdio on /dev/null.
# It costs one dash process (~1 MB); `runc run` in the foreground is the real supervisor: it is the
# container's parent and subreaper, forwards signals to it and returns its exit status (128+signal when
# killed). The daemon is never the reaper of container processes.
#
#   shim.sh RUNC ROOT ID DIR STDIN TTY
#     DIR    bundle and state directory (config.json, rootfs/, logs, fifo); the shim works from there
#     STDIN  none: /dev/null | keep: stdin.fifo held open read-write, never EOF (attachers come and go)
#            | once: stdin.fifo read-only, EOF when the last writer closes (the daemon holds one until the
#            first attacher has come)
#     TTY    1: the container gets a terminal. runc relays a terminal only from a controlling terminal of
#            its own, which script(1) provides; the container's output (both streams) is then stdout.log.
#
# Files it leaves in DIR: shim.pid (its pid, for liveness checks after a daemon restart), init.pid
# (written by runc once the container runs: the daemon waits for it), runc.log (runc's own messages, one
# JSON object a line), exit.json (when runc returns: exit code and time), stdout.log / stderr.log.
runc=$1 root=$2 id=$3 dir=$4 stdin=$5 tty=$6
cd "$dir" || exit 125
echo $$ >shim.pid
case $stdin in
  keep) exec 0<>stdin.fifo ;;
  once) exec 0<stdin.fifo ;;
  *) exec 0</dev/null ;;
esac
if [ "$tty" = 1 ]; then
  LOOM_RUNC=$runc LOOM_ROOT=$root LOOM_ID=$id LOOM_DIR=$dir SHELL=/bin/sh script -q -e -E never -c \
    'exec "$LOOM_RUNC" --root "$LOOM_ROOT" --log runc.log --log-format json run --bundle "$LOOM_DIR" --pid-file "$LOOM_DIR/init.pid" "$LOOM_ID"' \
    /dev/null >>stdout.log 2>>stderr.log
else
  "$runc" --root "$root" --log runc.log --log-format json run --bundle "$dir" --pid-file "$dir/init.pid" "$id" >>stdout.log 2>>stderr.log
fi
code=$?
printf '{"exitCode":%d,"finishedAt":"%s"}\n' "$code" "$(date -u +%Y-%m-%dT%H:%M:%S.%NZ)" >exit.json.tmp
mv -f exit.json.tmp exit.json
