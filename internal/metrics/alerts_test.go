package metrics_test

import (
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/pgguard/pgguard/internal/metrics"
)

// The example alert rules are what docs/examples ships to operators.
const (
	rulesFile = "../../docs/examples/prometheus-alerts.yml"
	rulesTest = "../../docs/examples/prometheus-alerts.test.yml"
)

func promtool(t *testing.T) string {
	t.Helper()
	p, err := exec.LookPath("promtool")
	if err != nil {
		t.Fatal("promtool is not installed: run make setup (apt-get install -y prometheus)")
	}
	return p
}

// promtool (Debian's prometheus package) accepts the rules, and its unit
// tests show each alert fire on the series that call for it and stay
// quiet on the healthy ones beside them.
func TestAlertRulesPassPromtool(t *testing.T) {
	tool := promtool(t)
	for _, args := range [][]string{{"check", "rules", rulesFile}, {"test", "rules", rulesTest}} {
		out, err := exec.Command(tool, args...).CombinedOutput()
		if err != nil {
			t.Errorf("promtool %s: %v\n%s", strings.Join(args, " "), err, out)
		}
	}
}

// The rules name only metrics the agent exports, and the unit tests
// exercise every alert.
func TestAlertRulesNameExportedMetricsAndAreAllTested(t *testing.T) {
	rules, err := os.ReadFile(rulesFile)
	if err != nil {
		t.Fatal(err)
	}
	tests, err := os.ReadFile(rulesTest)
	if err != nil {
		t.Fatal(err)
	}
	exported := map[string]bool{}
	ch := make(chan *prometheus.Desc)
	go func() {
		metrics.NewCollector(fakeSource{}, metrics.NewCounters()).Describe(ch)
		close(ch)
	}()
	name := regexp.MustCompile(`fqName: "([a-z_:]+)"`)
	for d := range ch {
		if m := name.FindStringSubmatch(d.String()); m != nil {
			exported[m[1]] = true
		}
	}
	for _, used := range regexp.MustCompile(`\bpgguard_[a-z_]+`).FindAllString(string(rules), -1) {
		if !exported[used] {
			t.Errorf("%s names %s, which the agent does not export", filepath.Base(rulesFile), used)
		}
	}
	alerts := regexp.MustCompile(`(?m)^\s*- alert: (\w+)`).FindAllStringSubmatch(string(rules), -1)
	if len(alerts) < 8 {
		t.Fatalf("%d alerts in %s", len(alerts), rulesFile)
	}
	for _, a := range alerts {
		if !regexp.MustCompile(`alertname: ` + a[1] + `\s*\n\s*exp_alerts:\s*\n\s*- exp_labels`).Match(tests) {
			t.Errorf("%s: no test shows %s fire", filepath.Base(rulesTest), a[1])
		}
	}
}
