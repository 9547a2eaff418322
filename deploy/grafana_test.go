package deploy

import (
	"encoding/json"
	"os"
	"regexp"
	"testing"
)

// dashboard is the part of a Grafana dashboard the test reads.
type dashboard struct {
	Panels []struct {
		Title   string `json:"title"`
		Type    string `json:"type"`
		Targets []struct {
			Expr string `json:"expr"`
		} `json:"targets"`
	} `json:"panels"`
	Templating struct {
		List []struct {
			Name       string `json:"name"`
			Definition string `json:"definition"`
		} `json:"list"`
	} `json:"templating"`
}

// metricNames finds the metrics a PromQL expression reads: embedd's, and
// the Go and process collectors' embedd registers.
var metricNames = regexp.MustCompile(`\b(?:embedd|go|process)_[a-z0-9_]+\b`)

// TestGrafanaDashboard: every query of grafana/embedd.json, and its model
// variable, names series that a real server's /metrics has once it has
// served each kind of call.
func TestGrafanaDashboard(t *testing.T) {
	data, err := os.ReadFile("grafana/embedd.json")
	if err != nil {
		t.Fatal(err)
	}
	var d dashboard
	if err := json.Unmarshal(data, &d); err != nil {
		t.Fatalf("grafana/embedd.json: %v", err)
	}
	exprs := map[string]string{} // expression → where
	for _, p := range d.Panels {
		if p.Type != "row" && len(p.Targets) == 0 {
			t.Errorf("panel %q has no query", p.Title)
		}
		for _, tg := range p.Targets {
			exprs[tg.Expr] = "panel " + p.Title
		}
	}
	for _, v := range d.Templating.List {
		if v.Definition != "" {
			exprs[v.Definition] = "variable " + v.Name
		}
	}
	page := exercise(t, startServes(t, nil, "127.0.0.6")[0], "")
	for expr, where := range exprs {
		names := metricNames.FindAllString(expr, -1)
		if len(names) == 0 {
			t.Errorf("%s: %q names no embedd metric", where, expr)
		}
		for _, n := range names {
			if err := hasSeries(page, n); err != nil {
				t.Errorf("%s: %v", where, err)
			}
		}
	}
	if len(exprs) < 15 {
		t.Errorf("only %d queries in the dashboard", len(exprs))
	}
}
