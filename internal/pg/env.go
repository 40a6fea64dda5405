package pg

import (
	"os"
	"strings"
)

// safePath is the PATH of the postmaster and of every PostgreSQL tool.
const safePath = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

// inherited are the agent's variables the server and its tools may see:
// locale and time zone, which initdb and the server read, and nothing
// else.
func inherited(name string) bool {
	switch name {
	case "LANG", "LANGUAGE", "TZ", "PGTZ", "PGDATESTYLE":
		return true
	}
	return strings.HasPrefix(name, "LC_")
}

// toolEnv is the whole environment of the postmaster and of every
// PostgreSQL tool the agent starts. A database superuser can read its
// server's environment (COPY … FROM PROGRAM 'env') and so can anything
// archive_command runs, so it holds no repository passphrase, copy
// passphrase or cloud key: only the allow-listed variables above, a fixed
// PATH, HOME of the database account, the passfile and extra.
func (i *Instance) toolEnv(extra ...string) []string {
	env := []string{"PATH=" + safePath, "PGPASSFILE=" + i.PassFile()}
	if h := i.o.Account.Home; h != "" {
		env = append(env, "HOME="+h)
	}
	for _, kv := range os.Environ() {
		if name, _, ok := strings.Cut(kv, "="); ok && inherited(name) {
			env = append(env, kv)
		}
	}
	return append(env, extra...)
}
