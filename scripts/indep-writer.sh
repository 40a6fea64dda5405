#!/usr/bin/env bash
# An independent client for checking the failover benches' write gaps with
# a program that is not theirs (docs/FAILOVER.md, "An independent client
# agrees").
#
#   scripts/indep-writer.sh write DSN OUT
#       psql through DSN (the demo's multi-host string), one INSERT every
#       10 ms, started again whenever it loses its connection; appends each
#       acknowledged write's clock_timestamp() (epoch seconds) to OUT, until
#       the file OUT.stop exists.
#   scripts/indep-writer.sh gaps OUT EVENTS
#       for each line "EPOCH LABEL" of EVENTS (when a fault was injected),
#       the largest gap between two acknowledged writes from 1 s before it
#       to 10 s after it.
set -euo pipefail

case "${1:-}" in
write)
	dsn=$2 out=$3
	psql "$dsn" -qc "CREATE TABLE IF NOT EXISTS indep (id bigserial PRIMARY KEY, at timestamptz NOT NULL DEFAULT clock_timestamp())"
	while [ ! -f "$out.stop" ]; do
		while [ ! -f "$out.stop" ]; do
			echo "INSERT INTO indep DEFAULT VALUES RETURNING extract(epoch FROM at);"
			sleep 0.01
		done | psql "$dsn" -At -q 2>>"$out.err" >>"$out" || true
	done
	;;
gaps)
	out=$2 events=$3
	while read -r at label; do
		sort -g "$out" | awk -v t="$at" -v label="$label" '
			$1 ~ /^[0-9.]+$/ && $1 >= t - 1 && $1 <= t + 10 {
				if (n++ && $1 - prev > gap) gap = $1 - prev
				prev = $1
			}
			END { printf "%s: largest gap between acknowledged writes %.0f ms (%d writes from -1 s to +10 s)\n", label, gap * 1000, n }'
	done <"$events"
	;;
*)
	echo "usage: $0 write DSN OUT | gaps OUT EVENTS" >&2
	exit 2
	;;
esac
