package logical

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"strings"

	"github.com/pgguard/pgguard/internal/repo"
)

// pgRestore feeds the backup's dump to pg_restore with args, restoring
// only the entries of list when it is not empty.
func pgRestore(ctx context.Context, o Options, m *repo.Manifest, e []string, args []string, list []string) error {
	if len(list) > 0 {
		f, err := os.CreateTemp("", "pgguard-restore-list-*")
		if err != nil {
			return err
		}
		defer os.Remove(f.Name())
		_, err = f.WriteString(strings.Join(list, "\n") + "\n")
		if cerr := f.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			return err
		}
		args = append(args, "--use-list="+f.Name())
	}
	rc, err := o.Repo.ReadFile(ctx, m, dumpFile)
	if err != nil {
		return err
	}
	defer rc.Close()
	cmd := exec.CommandContext(ctx, o.tool("pg_restore"), args...)
	cmd.Env, cmd.Stdin = e, rc
	out, err := cmd.CombinedOutput()
	if err != nil {
		return fmt.Errorf("%w: %s", err, strings.TrimSpace(string(out)))
	}
	return nil
}

// readTOC returns the entry lines of the dump's table of contents
// (pg_restore --list), comments left out.
func readTOC(ctx context.Context, o Options, m *repo.Manifest, e []string) ([]string, error) {
	rc, err := o.Repo.ReadFile(ctx, m, dumpFile)
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	cmd := exec.CommandContext(ctx, o.tool("pg_restore"), "--list")
	cmd.Env, cmd.Stdin = e, rc
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return nil, fmt.Errorf("list the dump of backup %s: %w: %s", m.ID, err, strings.TrimSpace(stderr.String()))
	}
	var lines []string
	for _, l := range strings.Split(string(out), "\n") {
		if l != "" && !strings.HasPrefix(l, ";") {
			lines = append(lines, l)
		}
	}
	return lines, nil
}

// selectTable picks the entries of one table from a table of contents:
// lines "ID; CATALOG OID DESC NAMESPACE TAG OWNER", where the tag of a
// constraint, trigger, rule, policy or default starts with the table's
// name and the tag of an index or sequence is its own name. Foreign keys
// come back separately.
func selectTable(toc []string, h repo.HeldTable) (main, fks []string) {
	s, t := h.Schema, h.Name
	var prefixes []string
	for _, d := range []string{"TABLE", "VIEW", "MATERIALIZED VIEW", "FOREIGN TABLE", "TABLE DATA", "MATERIALIZED VIEW DATA",
		"DEFAULT", "CONSTRAINT", "CHECK CONSTRAINT", "TRIGGER", "RULE", "POLICY", "ROW SECURITY"} {
		prefixes = append(prefixes, d+" "+s+" "+t+" ")
	}
	prefixes = append(prefixes, "COMMENT "+s+" TABLE "+t+" ", "COMMENT "+s+" VIEW "+t+" ", "COMMENT "+s+" COLUMN "+t+".",
		"ACL "+s+" TABLE "+t+" ")
	for _, q := range h.Sequences {
		prefixes = append(prefixes, "SEQUENCE "+s+" "+q+" ", "SEQUENCE OWNED BY "+s+" "+q+" ", "SEQUENCE SET "+s+" "+q+" ")
	}
	for _, i := range h.Indexes {
		prefixes = append(prefixes, "INDEX "+s+" "+i+" ")
	}
	fk := "FK CONSTRAINT " + s + " " + t + " "
	for _, line := range toc {
		// Skip "ID; CATALOG OID " to the description.
		rest := line
		for range 3 {
			_, after, ok := strings.Cut(rest, " ")
			if !ok {
				rest = ""
				break
			}
			rest = after
		}
		if strings.HasPrefix(rest, fk) {
			fks = append(fks, line)
			continue
		}
		for _, p := range prefixes {
			if strings.HasPrefix(rest, p) {
				main = append(main, line)
				break
			}
		}
	}
	return main, fks
}
