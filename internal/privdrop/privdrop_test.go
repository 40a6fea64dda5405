package privdrop

import (
	"slices"
	"testing"

	"github.com/pgguard/pgguard/internal/config"
)

func TestParentDir(t *testing.T) {
	cases := []struct{ name, in, want string }{
		{"a data directory's parent is created for the account", "/var/lib/postgresql/16/main", "/var/lib/postgresql/16"},
		{"trailing slashes do not make the directory its own parent", "/srv/pg/data//", "/srv/pg"},
		{"a directory right under the root is kept as it is (the root exists)", "/data", "/data"},
		{"the root stays the root", "/", "/"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if got := parentDir(tc.in); got != tc.want {
				t.Fatalf("parentDir(%q) = %q, want %q", tc.in, got, tc.want)
			}
		})
	}
}

func TestAgentDirs(t *testing.T) {
	cfg := config.Default()
	cfg.Postgres.DataDir = "/srv/pg/n1/data"
	cfg.Etcd.Endpoints = []string{"https://10.0.0.1:2379"}
	if got := AgentDirs(cfg); !slices.Equal(got, []string{"/srv/pg/n1"}) {
		t.Fatalf("a node with an external store: %v, want only the data directory's parent", got)
	}
	cfg.Witness = true
	if got := AgentDirs(cfg); len(got) != 0 {
		t.Fatalf("a witness with an external store runs no PostgreSQL and needs no directory: got %v", got)
	}
	cfg.Witness, cfg.Etcd.Endpoints, cfg.Etcd.Embed.DataDir = false, nil, "/srv/etcd/n1/"
	if got := AgentDirs(cfg); !slices.Equal(got, []string{"/srv/pg/n1", "/srv/etcd"}) {
		t.Fatalf("a node with an embedded store: %v, want the parents of both data directories", got)
	}
}
