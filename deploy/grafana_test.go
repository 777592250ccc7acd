package deploy

import (
	"encoding/json"
	"net/url"
	"os"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"gopush/conf"
	"gopush/internal/testenv"
)

// dashboardExprs returns every PromQL expression of the Grafana dashboard.
func dashboardExprs(t *testing.T) []string {
	t.Helper()
	b, err := os.ReadFile("grafana/gopush.json")
	if err != nil {
		t.Fatal(err)
	}
	var dash struct {
		Title  string
		Panels []struct {
			Title   string
			Targets []struct{ Expr string }
		}
	}
	if err := json.Unmarshal(b, &dash); err != nil {
		t.Fatalf("grafana/gopush.json: %v", err)
	}
	var exprs []string
	for _, p := range dash.Panels {
		for _, tg := range p.Targets {
			exprs = append(exprs, tg.Expr)
		}
	}
	if len(exprs) < 20 {
		t.Fatalf("only %d queries in grafana/gopush.json", len(exprs))
	}
	return exprs
}

// metricName matches the metric names in a query (label names and
// functions are not prefixed like these).
var metricName = regexp.MustCompile(`\b(?:gopush|go|process)_[a-z_]+\b`)

// Every metric the Grafana dashboard queries is exported by a running
// cluster (a histogram's _bucket by its histogram).
func TestGrafanaDashboardMetricsExist(t *testing.T) {
	t.Parallel()
	want := map[string]bool{}
	for _, e := range dashboardExprs(t) {
		for _, name := range metricName.FindAllString(e, -1) {
			want[name] = true
		}
	}

	cl := testenv.NewCluster(t)
	msg := cl.StartMessage()
	comet := cl.StartComet("node1", 1)
	web := cl.StartWeb()
	key := testenv.Unique(t)
	testenv.WaitFor(t, 30*time.Second, "web to know the comet", func() bool {
		s, _, err := testenv.ServerOf("http://"+web.HTTP, key, "2")
		return err == nil && s == comet.TCP
	})
	// Some traffic, so that series created on first use exist: a stored
	// push and a read of it.
	if ret, err := testenv.Push(web.Admin, key, `{"g":1}`, 60); err != nil || ret != 0 {
		t.Fatalf("push: %d %v", ret, err)
	}
	if a, err := testenv.WebGet("http://"+web.HTTP, "/1/msg/get", url.Values{"k": {key}, "m": {"0"}}); err != nil || a.Ret != 0 {
		t.Fatalf("msg/get: %+v %v", a, err)
	}
	have := map[string]bool{}
	for _, addr := range []string{msg.Metrics, comet.Metrics, web.Metrics} {
		for _, s := range testenv.Scrape(t, addr) {
			have[s.Name] = true
		}
	}
	var missing []string
	for name := range want {
		if !have[name] {
			missing = append(missing, name)
		}
	}
	slices.Sort(missing)
	if len(missing) > 0 {
		t.Errorf("grafana/gopush.json queries metrics no daemon exports: %v", missing)
	}
	t.Logf("the dashboard queries %d metrics, all exported", len(want))
}

// The Prometheus configuration scrapes each daemon at the default
// metrics.bind of conf/<daemon>.toml.
func TestPrometheusConfig(t *testing.T) {
	b, err := os.ReadFile("prometheus/prometheus.yml")
	if err != nil {
		t.Fatal(err)
	}
	text := string(b)
	for job, binds := range map[string][]string{
		"gopush-comet":   conf.DefaultComet().Metrics.Bind,
		"gopush-web":     conf.DefaultWeb().Metrics.Bind,
		"gopush-message": conf.DefaultMessage().Metrics.Bind,
	} {
		i := strings.Index(text, "job_name: "+job+"\n")
		if i < 0 {
			t.Errorf("no job %s", job)
			continue
		}
		section := text[i:]
		if j := strings.Index(section[1:], "job_name:"); j >= 0 {
			section = section[:j+1]
		}
		if !strings.Contains(section, `targets: ["`+binds[0]+`"]`) {
			t.Errorf("job %s does not scrape %s:\n%s", job, binds[0], section)
		}
	}
}
