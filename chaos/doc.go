// Package chaos is pgguard's chaos suite: it runs a three-node cluster with
// each node (agent, embedded etcd member, PostgreSQL) in its own network
// namespace on a private bridge, drives a Jepsen-like workload from a
// fourth namespace, injects faults (kills, partitions, a lost etcd
// majority, a flapping link) and checks after each trial that no
// acknowledged write was lost in a synchronous mode, that two nodes never
// accepted writes at once, and that the cluster healed by itself.
//
// It only ever addresses loopback or its own namespaces' private subnet
// (10.200.0.0/24, or 10.200.k.0/24 for a run in slot k beside others, made
// unreachable in the root namespace while the run lasts), signals only the processes it started, and removes every
// namespace it created, also after a failure or Ctrl-C. It never changes
// pgguard's own packages: what it finds goes into the report.
//
// Run it with `make chaos` (root); see docs/RELIABILITY.md.
package chaos
