#!/usr/bin/env bash
# Times `rvsadm -R` of 10,000 services x 10 real servers (110,000 rule lines) against a live rvsd
# running in a private, empty network namespace (veth pairs inside it only; no traffic is sent).
# Needs root. Usage: crates/rvsadm/benches/restore_rvsd.sh   (from the workspace root)
. "$(dirname "$0")/rvsd_netns.sh" restore
write_rules
rvsd_up --no-save

start=$(date +%s%N)
adm -R <"$RULES" || { tail -5 "$TMP/rvsd.log"; exit 1; }
end=$(date +%s%N)
echo "rvsadm -R (10,000 services x 10 real servers) through rvsd: $(( (end - start) / 1000000 )) ms"
start=$(date +%s%N)
n=$(adm -S -n | wc -l)
end=$(date +%s%N)
echo "rvsadm -S -n: $n lines in $(( (end - start) / 1000000 )) ms"
[ "$n" -eq 110000 ]
