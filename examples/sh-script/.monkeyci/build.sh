# A build script in plain sh: two jobs in parallel, a third that needs
# both, and a count the script makes itself, reported as a job (an action).
set -eu
image=monkeyci/busybox:latest
greeting=$(monkeyci param get greeting 2>/dev/null || echo hello)

monkeyci job run lint --image "$image" --detach -- 'grep -q world hello.txt'
monkeyci job run test --image "$image" --detach -- 'test -s hello.txt'
# The agent freezes this script while it waits, and lends its CPU to the jobs.
monkeyci job wait lint test

monkeyci job run package --image "$image" --dep lint --dep test \
	--env "GREETING=$greeting" --save-artifact greeting:dist -- \
	'mkdir -p dist' 'echo "$GREETING" > dist/greeting.txt' 'cat dist/greeting.txt'
monkeyci job action count -- sh -c 'echo "$(find . -type f | wc -l) files in the workspace"'
monkeyci job status
