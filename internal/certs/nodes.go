package certs

import (
	"strings"

	"github.com/pgguard/pgguard/internal/badinput"
)

// InitNodes is Init for a cluster as a person names it: the nodes, the
// operators' certificate (ClientName), and hosts, NODE=ADDRESS items each
// naming an address or DNS name a node's store is reached at besides
// loopback. A wrong input is a badinput error and writes nothing.
func InitNodes(dir string, nodes, hosts []string) error {
	if dir == "" || len(nodes) == 0 {
		return badinput.Errorf("certs init needs --dir and --nodes")
	}
	byNode := map[string][]string{}
	for _, h := range hosts {
		node, addr, ok := strings.Cut(h, "=")
		if !ok || node == "" || addr == "" {
			return badinput.Errorf("--host %q: give NODE=ADDRESS", h)
		}
		found := false
		for _, n := range nodes {
			found = found || n == node
		}
		if !found {
			return badinput.Errorf("--host %q: %s is not one of --nodes", h, node)
		}
		byNode[node] = append(byNode[node], addr)
	}
	for _, n := range nodes {
		if n == ClientName {
			return badinput.Errorf("--nodes: %q is the name of the operators' certificate; choose another node name", n)
		}
	}
	return Init(dir, append(append([]string{}, nodes...), ClientName), byNode)
}
