package console_test

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/cdp"
	cdplog "github.com/chromedp/cdproto/log"
	"github.com/chromedp/cdproto/runtime"
	"github.com/chromedp/chromedp"

	"github.com/pgguard/pgguard/internal/auth"
	"github.com/pgguard/pgguard/internal/config"
	"github.com/pgguard/pgguard/internal/demo"
	"github.com/pgguard/pgguard/internal/jobs"
	"github.com/pgguard/pgguard/internal/jobs/schedule"
	"github.com/pgguard/pgguard/internal/status"
	"github.com/pgguard/pgguard/internal/testcluster"
)

// screenshots is where the test leaves its pictures for the README.
var screenshots = filepath.Join("..", "..", "docs", "img")

// An operator logs in with a password, sees the three members, switches
// over to the standby it picks with the button (after the dry run's
// checks), sees the new primary and the switchover's timeline, starts a
// drill and sees its result, pauses and resumes; a viewer, logged in with
// a token, then sees the same cluster and no operation button.
func TestConsoleInChromium(t *testing.T) {
	browserPath := chromium(t)
	acct := testcluster.Account(t)
	c := testcluster.StartCluster(t, testcluster.ClusterOptions{
		APITLS: true,
		// Every node archives WAL into one repository and may run backup
		// jobs, as in the demo (the layout's directory holds the node's).
		Edit: func(cfg *config.Config) {
			demo.Layout{Dir: filepath.Dir(filepath.Dir(cfg.Postgres.DataDir))}.WithBackups(cfg)
		},
		BeforeStart: func(c *testcluster.Cluster) {
			if err := c.Layout.InitRepository(c.Exe, acct); err != nil {
				t.Fatalf("init the backup repository: %v", err)
			}
		},
	})
	ctx := context.Background()
	installJobs(t, c)
	_, operatorPW, err := c.Layout.CreateUser(ctx, "olga", auth.Operator, true)
	if err != nil {
		t.Fatal(err)
	}
	viewerToken, _, err := c.Layout.CreateUser(ctx, "vera", auth.Viewer, false)
	if err != nil {
		t.Fatal(err)
	}
	b := startBrowser(t, browserPath)
	url := c.Layout.ClientEndpoints().Console

	b.do(chromedp.Navigate(url))
	b.login("olga", operatorPW)
	old := c.Leader()
	first := b.waitFor("the operator's view of three healthy members", 60*time.Second, func(p page) bool {
		return p.Who == "olga (operator)" && len(p.Members) == 3 && p.primary() == old && p.allHealthy() &&
			slices.Contains(p.Ops, "switchover") && slices.Contains(p.Ops, "pause") &&
			slices.Contains(p.Ops, "run-job:first-full") && slices.Contains(p.Ops, "drill:drill")
	})
	b.waitFor("the first full backup listed", 180*time.Second, func(p page) bool { return len(p.Backups) > 0 })

	// Switch over to the standby sorted last: a choice, not the default.
	var to string
	for _, m := range first.Members {
		if m.Name != old {
			to = m.Name
		}
	}
	b.do(chromedp.Click(chromedp.CSS(`button[data-op="switchover"]`)))
	b.waitFor("the switchover dialog", 10*time.Second, func(p page) bool { return p.Dialog && p.Candidate != "" })
	b.do(chromedp.Evaluate[chromedp.Void](fmt.Sprintf(`(() => {
		const s = document.getElementById('switchover-to');
		s.value = %q;
		s.dispatchEvent(new Event('change', {bubbles: true}));
	})()`, to)))
	planned := b.waitFor("the dry run's checks for a switchover to "+to, 30*time.Second, func(p page) bool {
		return p.Dialog && p.PlanOK == "true" && p.ConfirmEnabled && strings.Contains(p.Plan, old+" → "+to) && len(p.Checks) > 0
	})
	for _, ch := range planned.Checks {
		if !ch.OK {
			t.Fatalf("the dialog shows a failed check although the plan passes: %+v", planned.Checks)
		}
	}
	if r, _ := c.Status(); r.Leader != old {
		t.Fatalf("the dry run changed the leader: %s, was %s", r.Leader, old)
	}
	b.screenshot("console-switchover.png", "")

	b.do(chromedp.Click(chromedp.ID("confirm-go")))
	b.waitFor("the console showing "+to+" as the new primary", 120*time.Second, func(p page) bool {
		return !p.Dialog && strings.Contains(p.Notice, "switchover "+old+" → "+to+" done") && p.primary() == to &&
			p.role(old) == "standby" && p.allHealthy()
	})
	c.WaitFor("the cluster led by "+to, 30*time.Second, func(r status.Report) bool { return r.Leader == to })
	b.waitFor("the switchover's timeline", 30*time.Second, func(p page) bool {
		return p.Episode.Kind == "switchover" && p.Episode.From == old && p.Episode.To == to &&
			slices.Contains(p.Lanes, old) && slices.Contains(p.Lanes, to) && p.Marks >= 3
	})
	b.screenshot("console-topology.png", "")
	b.screenshot("console-timeline.png", chromedp.ID("episodes-section"))

	// A drill, started with its button, runs on the new primary.
	b.do(chromedp.Click(chromedp.CSS(`button[data-op="drill"][data-arg="drill"]`)))
	b.waitFor("the drill's dry run", 30*time.Second, func(p page) bool {
		return p.Dialog && p.PlanOK == "true" && p.ConfirmEnabled && strings.Contains(p.Plan, "run job drill now")
	})
	b.do(chromedp.Click(chromedp.ID("confirm-go")))
	done := b.waitFor("the drill's result", 240*time.Second, func(p page) bool {
		return slices.ContainsFunc(p.Drills, func(s string) bool { return s == "drill:succeeded" || s == "drill:failed" })
	})
	if !slices.Contains(done.Drills, "drill:succeeded") {
		t.Fatalf("the drill did not pass: %v\n%s", done.Drills, b.text("#drills"))
	}
	b.waitFor("the backups verified by the drill", 30*time.Second, func(p page) bool { return strings.Contains(b.text("#backups"), "restored in a drill") })
	b.do(chromedp.ScrollIntoView(chromedp.ID("backups-section")))
	b.screenshot("console-backups.png", "")

	// Pause and resume have no check: the dialog says so and lets the
	// operator confirm.
	for _, op := range []struct {
		button, next string
		paused       bool
	}{{"pause", "resume", true}, {"resume", "pause", false}} {
		b.do(chromedp.Click(chromedp.CSS(fmt.Sprintf(`button[data-op=%q]`, op.button))))
		b.waitFor("the "+op.button+" dialog", 30*time.Second, func(p page) bool {
			return p.Dialog && p.ConfirmEnabled && strings.Contains(p.Plan, "no check")
		})
		b.do(chromedp.Click(chromedp.ID("confirm-go")))
		b.waitFor("the cluster shown paused="+fmt.Sprint(op.paused), 30*time.Second, func(p page) bool {
			return !p.Dialog && p.Paused == op.paused && slices.Contains(p.Ops, op.next)
		})
		if r, err := c.Status(); err != nil || r.Paused != op.paused {
			t.Fatalf("after %s the store says paused=%v (%v)", op.button, r.Paused, err)
		}
	}

	// A viewer sees the same cluster, jobs and drills, and no button that
	// acts.
	b.do(chromedp.Click(chromedp.ID("logout")))
	b.waitFor("the login form after logging out", 10*time.Second, func(p page) bool { return p.View == "login" })
	b.loginWithToken(viewerToken)
	b.waitFor("the viewer's view without operations", 60*time.Second, func(p page) bool {
		return p.Who == "vera (viewer)" && len(p.Members) == 3 && p.primary() == to && p.Jobs >= 2 &&
			len(p.Drills) > 0 && p.Episode.Kind == "switchover" && len(p.Ops) == 0
	})
	if p := b.snapshot(); len(p.Ops) != 0 {
		t.Fatalf("the viewer sees operation buttons: %v", p.Ops)
	}
	b.checkNoErrors()
}

// chromium finds the browser; without it the test says how to install it
// (and fails under CI, where make test installed it).
func chromium(t *testing.T) string {
	for _, name := range []string{"chromium", "chromium-browser"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	why := "no chromium on PATH: apt-get install -y chromium (scripts/setup.sh, which make test runs, installs it)"
	if os.Getenv("CI") != "" {
		t.Fatal(why)
	}
	t.Skip(why)
	return ""
}

// installJobs stores a full backup that runs at once and a drill that runs
// only when started.
func installJobs(t *testing.T, c *testcluster.Cluster) {
	t.Helper()
	now := time.Now()
	store, err := c.Layout.OpenStore()
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	for _, s := range []struct {
		id, sched string
		kind      jobs.Kind
	}{{"first-full", "immediate", jobs.KindFull}, {"drill", "manual", jobs.KindDrill}} {
		sc, err := schedule.Parse(s.sched, now)
		if err != nil {
			t.Fatal(err)
		}
		j := jobs.Job{ID: s.id, Name: s.id, Kind: s.kind, Schedule: sc, Enabled: true, Created: now, Updated: now}
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		err = store.PutJob(sctx, j, true)
		cancel()
		if err != nil {
			t.Fatalf("store job %s: %v", s.id, err)
		}
	}
}

// browser is one headless Chromium tab and what its page reported.
type browser struct {
	t   *testing.T
	ctx context.Context

	mu     sync.Mutex
	errors []string
}

func startBrowser(t *testing.T, path string) *browser {
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(path),
		chromedp.NoSandbox, // the tests run as root in CI
		chromedp.DisableGPU,
		chromedp.Flag("disable-component-update", true),
		// The agents present certificates of the cluster's own CA, which
		// this profile does not trust: the test accepts them with this
		// flag rather than installing the CA into an NSS database. The
		// API's verification against the CA is tested in internal/rest.
		chromedp.IgnoreCertErrors,
		chromedp.WindowSize(1400, 1000),
	)
	allocCtx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancelTab := chromedp.NewContext(allocCtx, chromedp.WithLogf(t.Logf))
	t.Cleanup(func() { cancelTab(); cancelAlloc() })
	b := &browser{t: t, ctx: ctx}
	if err := chromedp.Listen(ctx, b.record); err != nil {
		t.Fatalf("start chromium (%s): %v", path, err)
	}
	b.do(chromedp.Func(func(ctx context.Context, tg *chromedp.Target) error {
		_, err := cdp.Call(ctx, tg, cdplog.Enable, cdp.Empty{})
		return err
	}))
	return b
}

// record keeps what the page reported as an error: an exception, a
// console.error, a refused Content-Security-Policy. Failed API calls (a
// node without a repository answers 404) are the page's to show.
func (b *browser) record(ev any) {
	var msg string
	switch ev := ev.(type) {
	case *runtime.EventExceptionThrown:
		d := ev.ExceptionDetails
		msg = fmt.Sprintf("exception %s at %s:%d", d.Text, d.URL, d.LineNumber)
		if d.Exception != nil {
			msg += ": " + d.Exception.Description
		}
	case *runtime.EventConsoleAPICalled:
		if ev.Type == runtime.ConsoleAPICalledTypeError {
			msg = "console.error"
			for _, a := range ev.Args {
				msg += " " + string(a.Value) + a.Description
			}
		}
	case *cdplog.EventEntryAdded:
		if e := ev.Entry; e.Level == cdplog.EntryLevelError && e.Source != cdplog.EntrySourceNetwork {
			msg = fmt.Sprintf("%s: %s (%s)", e.Source, e.Text, e.URL)
		}
	}
	if msg != "" {
		b.mu.Lock()
		b.errors = append(b.errors, msg)
		b.mu.Unlock()
	}
}

func (b *browser) checkNoErrors() {
	b.t.Helper()
	b.mu.Lock()
	defer b.mu.Unlock()
	if len(b.errors) > 0 {
		b.t.Fatalf("the page reported errors:\n%s", strings.Join(b.errors, "\n"))
	}
}

func (b *browser) do(a chromedp.Action[chromedp.Void]) {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, 30*time.Second)
	defer cancel()
	if err := chromedp.Do(ctx, a); err != nil {
		b.t.Fatalf("chromium: %v (page: %s)", err, b.snapshot())
	}
}

func (b *browser) login(user, password string) {
	b.t.Helper()
	b.waitFor("the login form", 30*time.Second, func(p page) bool { return p.View == "login" })
	b.do(chromedp.SendKeys(chromedp.ID("login-user"), user))
	b.do(chromedp.SendKeys(chromedp.ID("login-password"), password))
	b.do(chromedp.Click(chromedp.ID("login-submit")))
}

func (b *browser) loginWithToken(token string) {
	b.t.Helper()
	b.waitFor("the login form", 30*time.Second, func(p page) bool { return p.View == "login" })
	b.do(chromedp.SendKeys(chromedp.ID("login-token"), token))
	b.do(chromedp.Click(chromedp.ID("token-submit")))
}

// text is an element's text as the page shows it.
func (b *browser) text(selector string) string {
	ctx, cancel := context.WithTimeout(b.ctx, 10*time.Second)
	defer cancel()
	s, err := chromedp.Run(ctx, chromedp.Evaluate[string](fmt.Sprintf(`(document.querySelector(%q) || {}).innerText || ''`, selector)))
	if err != nil {
		return "(" + err.Error() + ")"
	}
	return s
}

// screenshot saves the viewport, or one element, as a PNG in docs/img.
func (b *browser) screenshot(name string, element chromedp.ID) {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, 30*time.Second)
	defer cancel()
	var png []byte
	var err error
	if element == "" {
		png, err = chromedp.Run(ctx, chromedp.CaptureScreenshot())
	} else {
		png, err = chromedp.Run(ctx, chromedp.Screenshot(element))
	}
	if err != nil {
		b.t.Fatalf("screenshot %s: %v", name, err)
	}
	if err := os.MkdirAll(screenshots, 0o755); err != nil {
		b.t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(screenshots, name), png, 0o644); err != nil {
		b.t.Fatal(err)
	}
}

// page is what the console shows, read from its DOM.
type page struct {
	View    string `json:"view"`
	Who     string `json:"who"`
	Members []struct {
		Name    string `json:"name"`
		Role    string `json:"role"`
		Healthy bool   `json:"healthy"`
	} `json:"members"`
	Ops     []string `json:"ops"`
	Episode struct {
		Kind string `json:"kind"`
		From string `json:"from"`
		To   string `json:"to"`
	} `json:"episode"`
	Lanes          []string `json:"lanes"`
	Marks          int      `json:"marks"`
	Backups        []string `json:"backups"`
	Jobs           int      `json:"jobs"`
	Drills         []string `json:"drills"`
	Paused         bool     `json:"paused"`
	Notice         string   `json:"notice"`
	LoginError     string   `json:"loginError"`
	Dialog         bool     `json:"dialog"`
	Candidate      string   `json:"candidate"`
	Plan           string   `json:"plan"`
	PlanOK         string   `json:"planOK"`
	ConfirmEnabled bool     `json:"confirmEnabled"`
	ConfirmError   string   `json:"confirmError"`
	Checks         []struct {
		Name string `json:"name"`
		OK   bool   `json:"ok"`
	} `json:"checks"`
}

const readPage = `(() => {
	const q = (s) => document.querySelector(s);
	const all = (s) => [...document.querySelectorAll(s)];
	const ep = q('#timeline h3');
	const plan = q('#confirm .plan');
	return {
		view: q('#app-view').hidden ? 'login' : 'app',
		who: q('#who').hidden ? '' : q('#who-name').textContent,
		members: all('#topology [data-member]').map((e) => ({name: e.dataset.member, role: e.dataset.role, healthy: e.dataset.healthy === 'true'})),
		ops: all('button[data-op]').map((b) => b.dataset.op + (b.dataset.arg ? ':' + b.dataset.arg : '')),
		episode: ep ? {kind: ep.dataset.kind, from: ep.dataset.from, to: ep.dataset.to} : {},
		lanes: all('#timeline [data-lane]').map((e) => e.dataset.lane),
		marks: all('#timeline .mark').length,
		backups: all('#backups [data-backup]').map((e) => e.dataset.backup),
		jobs: all('#jobs [data-job]').length,
		drills: all('#drills [data-run]').map((e) => e.dataset.run + ':' + e.dataset.status),
		paused: !!q('#cluster-line .paused'),
		notice: q('#notice').textContent,
		loginError: q('#login-error').textContent,
		dialog: q('#confirm').open,
		candidate: (q('#switchover-to') || {}).value || '',
		plan: q('#confirm-plan').textContent,
		planOK: plan ? plan.dataset.ok : '',
		confirmEnabled: !q('#confirm-go').disabled,
		confirmError: q('#confirm-error').textContent,
		checks: all('#confirm [data-check]').map((e) => ({name: e.dataset.check, ok: e.classList.contains('pass')})),
	};
})()`

func (b *browser) snapshot() page {
	ctx, cancel := context.WithTimeout(b.ctx, 10*time.Second)
	defer cancel()
	p, err := chromedp.Run(ctx, chromedp.Evaluate[page](readPage))
	if err != nil {
		return page{View: "unreadable: " + err.Error()}
	}
	return p
}

func (p page) String() string {
	j, _ := json.Marshal(p)
	return string(j)
}

func (p page) primary() string {
	for _, m := range p.Members {
		if m.Role == "primary" {
			return m.Name
		}
	}
	return ""
}

func (p page) role(name string) string {
	for _, m := range p.Members {
		if m.Name == name {
			return m.Role
		}
	}
	return ""
}

func (p page) allHealthy() bool {
	for _, m := range p.Members {
		if !m.Healthy {
			return false
		}
	}
	return len(p.Members) > 0
}

// waitFor polls the page until cond holds and returns what it showed then;
// it fails with the page's last state (and any error the page reported).
func (b *browser) waitFor(what string, timeout time.Duration, cond func(page) bool) page {
	b.t.Helper()
	var last page
	testcluster.WaitUntil(b.t, timeout, what, func() (bool, string) {
		last = b.snapshot()
		b.mu.Lock()
		errs := strings.Join(b.errors, "; ")
		b.mu.Unlock()
		return cond(last), last.String() + " page errors: [" + errs + "]"
	})
	return last
}
