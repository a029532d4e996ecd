#!/bin/sh
# MonkeyCI job wrapper. The same bytes for every job: script lines are data,
# one file each in $MONKEYCI_JOB_DIR/lines/N, run as "$MONKEYCI_SHELL" FILE in
# the container's working directory. Each event is one small printf appended
# to events.edn, so a reader sees whole lines. Stops at the first failing line.
d=${MONKEYCI_JOB_DIR:-/opt/monkeyci/job}
n=${MONKEYCI_LINES:-0}
sh=${MONKEYCI_SHELL:-sh}
ev=$d/events.edn
log=$d/logs

# The paths go into EDN strings; refuse what would need escaping there.
case $d in
*[\"\\]* | *'
'*)
	echo "monkeyci: unusable job dir" >&2
	exit 125
	;;
esac
case $n in
'' | *[!0-9]*)
	echo "monkeyci: MONKEYCI_LINES is not a number" >&2
	exit 125
	;;
esac
[ -d "$log" ] || mkdir -p "$log" || exit 125

printf '{:type :container/start}\n' >>"$ev"
# A job that depends on a service is started beside it and waits here, at a
# FIFO, until the agent writes a line: the service accepts connections.
if [ -p "$d/gate" ]; then
	read -r _ <"$d/gate"
fi
i=0
while [ "$i" -lt "$n" ]; do
	out=$log/${i}_out.log
	err=$log/${i}_err.log
	printf '{:type :command/start :command "%s" :stdout "%s" :stderr "%s"}\n' "$i" "$out" "$err" >>"$ev"
	"$sh" "$d/lines/$i" >"$out" 2>"$err"
	x=$?
	printf '{:type :command/end :command "%s" :exit %d :stdout "%s" :stderr "%s"}\n' "$i" "$x" "$out" "$err" >>"$ev"
	if [ "$x" -ne 0 ]; then
		printf '{:type :container/script-end :result {:status :error :exit %d} :step "%s" :done? true}\n' "$x" "$i" >>"$ev"
		exit "$x"
	fi
	i=$((i + 1))
done
printf '{:type :container/script-end :result {:status :success :exit 0} :done? true}\n' >>"$ev"
