//go:build integration

package integration

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/ds01-project/ds01/pkg/inventory"
)

// fleetServer is one GPU server of the fleet: the textfile its scanner
// wrote and the node_exporter that serves it, whose address is the
// server's instance in Prometheus.
type fleetServer struct {
	textDir  string
	inv      *inventory.Inventory
	instance string
}

// TestFleetPrometheusAndDashboard builds a lab of two GPU servers from real
// scans of real containers, serves each scan with a real node_exporter and
// scrapes both with a real Prometheus loaded with the shipped alerting rules.
// Every question the README's Prometheus section asks is asked in its exact
// PromQL and answered as the scans saw it, each server told apart by
// instance; undeclared GPU use fires its alert; and every query of the
// Grafana dashboard evaluates, with series wherever the scans put some.
//
//   - gpu01 (4 GPUs): alice's ds01-managed container declared GPU 0 and
//     holds 2 GiB there; bob's aime container declared GPU 1 and runs
//     nothing (idle, and outside the lab's tooling); GPU 2 has 3 GiB no
//     process holds; GPUs 2 and 3 are free.
//   - gpu02 (3 GPUs): carol's ds01-managed container declared GPU 0 and runs
//     on GPUs 0 and 1 (undeclared on 1); alice's aime container declared
//     nothing and runs on GPU 1; GPU 2 is free.
func TestFleetPrometheusAndDashboard(t *testing.T) {
	exporterBin, err := exec.LookPath("prometheus-node-exporter")
	mustHave(t, err == nil, "prometheus-node-exporter not installed (apt-get install prometheus-node-exporter)")
	prometheusBin, err := exec.LookPath("prometheus")
	mustHave(t, err == nil, "prometheus not installed (apt-get install prometheus)")
	ctx, cancel := context.WithTimeout(context.Background(), 80*time.Second)
	defer cancel()

	// One engine serves both servers: each scan runs while only its own
	// server's containers exist, and its textfile stays as it was written.
	managed := func(user, visible string) string {
		return container(t, "run", "-d", "--label", "ds01.managed=true", "--label", "ds01.user="+user,
			"--runtime=nvidia", "-e", "NVIDIA_VISIBLE_DEVICES="+visible, env.image, "sleep", "600")
	}
	scanServer := func(gpus int, run func() mockNVML) *fleetServer {
		t.Helper()
		g := newGPUScanner(t)
		s := &fleetServer{textDir: filepath.Join(g.dir, "textfile")}
		if err := os.Mkdir(s.textDir, 0o755); err != nil {
			t.Fatal(err)
		}
		m := run()
		m.GPUs = &gpus
		g.report(t, m)
		s.inv, _ = g.mustScan(t, scanOpts{args: []string{"--textfile-dir", s.textDir}})
		if !s.inv.Sources["nvml"].OK {
			t.Fatalf("nvml source: %+v", s.inv.Sources["nvml"])
		}
		return s
	}
	var alice1, bob, carol, alice2 string
	gpu01 := scanServer(4, func() mockNVML {
		alice1 = managed("alice", "0")
		bob = container(t, "run", "-d", "--label", "aime.mlc.USER=bob", "--runtime=nvidia", "-e", "NVIDIA_VISIBLE_DEVICES=1",
			env.image, "sleep", "600")
		return mockNVML{Processes: []mockProcess{{GPU: 0, PID: mainPID(t, alice1), MemoryBytes: 2 * gib, Kind: "compute"}},
			Unlisted: map[string]uint64{"2": 3 * gib}}
	})
	for _, id := range []string{alice1, bob} {
		docker(t, "rm", "-f", id)
	}
	gpu02 := scanServer(3, func() mockNVML {
		carol = managed("carol", "0")
		alice2 = container(t, "run", "-d", "--label", "aime.mlc.USER=alice", env.image, "sleep", "600")
		return mockNVML{Processes: []mockProcess{
			{GPU: 0, PID: mainPID(t, carol), MemoryBytes: gib, Kind: "compute"},
			{GPU: 1, PID: mainPID(t, carol), MemoryBytes: 3 * gib, Kind: "compute"},
			{GPU: 1, PID: mainPID(t, alice2), MemoryBytes: gib / 2, Kind: "compute"},
		}}
	})
	servers := []*fleetServer{gpu01, gpu02}
	for id, want := range map[string]struct {
		inv               *inventory.Inventory
		typ, user, access string
	}{
		alice1: {gpu01.inv, "ds01-managed", "alice", inventory.AccessInUse},
		bob:    {gpu01.inv, "raw-docker", "bob", inventory.AccessDeclared},
		carol:  {gpu02.inv, "ds01-managed", "carol", inventory.AccessUndeclared},
		alice2: {gpu02.inv, "raw-docker", "alice", inventory.AccessUndeclared},
	} {
		if c := mustFind(t, want.inv, id); c.Type != want.typ || c.User != want.user || c.GPUAccess != want.access {
			t.Fatalf("container %s scanned as %s of %s, %s; the fleet needs %s of %s, %s",
				id[:12], c.Type, c.User, c.GPUAccess, want.typ, want.user, want.access)
		}
	}

	for _, s := range servers {
		addr := freeAddr(t)
		startDaemon(t, "node_exporter "+addr, exporterBin, "--web.listen-address="+addr,
			"--collector.disable-defaults", "--collector.textfile", "--collector.textfile.directory="+s.textDir)
		s.instance = addr
	}
	p := startPrometheus(t, prometheusBin, servers)
	byInstance := map[string]*fleetServer{}
	for _, s := range servers {
		byInstance[s.instance] = s
	}

	// Each scrape brings a whole ds01.prom: one of its series present on
	// every server means all of them are.
	var scraped time.Time
	p.await(t, ctx, "both servers' ds01 metrics scraped", func() bool {
		r, err := p.query(ctx, "ds01_last_scan_timestamp_seconds")
		return err == nil && len(r) == len(servers)
	})
	scraped = time.Now()

	// What each question must answer, from the scans: one line per series,
	// its labels and value.
	expect := fleetExpectations(servers)
	questions := readmeQuestions(t)
	if len(questions) == 0 {
		t.Fatal("no PromQL questions in the README's Prometheus section")
	}
	for _, q := range questions {
		want, ok := expect.answer(q.question)
		if !ok {
			t.Errorf("README question %q (%s) has no expected answer in this test", q.question, q.expr)
			continue
		}
		got, err := p.query(ctx, q.expr)
		if err != nil {
			t.Errorf("%s: %s: %v", q.question, q.expr, err)
			continue
		}
		if lines := want.render(got); !slices.Equal(lines, want.lines) {
			t.Errorf("%s\n%s\nPrometheus answered:\n\t%s\nthe scans say:\n\t%s", q.question, q.expr,
				strings.Join(lines, "\n\t"), strings.Join(want.lines, "\n\t"))
		} else {
			t.Logf("%s\n\t%s\n\t→ %s", q.question, q.expr, strings.Join(lines, "\n\t  "))
		}
		if want.sorted && !sortedDesc(got) {
			t.Errorf("%s: %s answered out of order", q.question, q.expr)
		}
	}
	// Fixed points of the fleet, so that answers derived from the scans
	// cannot agree on nothing.
	for expr, want := range map[string][]string{
		`ds01_gpu_undeclared_workload == 1`: {
			"gpus=1 id=" + carol[:12] + " instance=" + gpu02.instance + " user=carol = 1",
			"gpus=1 id=" + alice2[:12] + " instance=" + gpu02.instance + " user=alice = 1",
		},
		`count by (user) (ds01_gpu_workload_memory_bytes)`: {"user=alice = 2", "user=bob = 1", "user=carol = 2"},
		`count by (instance) (ds01_gpu_workloads == 0)`:    {"instance=" + gpu01.instance + " = 2", "instance=" + gpu02.instance + " = 1"},
		`ds01_gpu_workloads > 0`: {
			"gpu=0 instance=" + gpu01.instance + " users=alice = 1", "gpu=1 instance=" + gpu01.instance + " users=bob = 1",
			"gpu=0 instance=" + gpu02.instance + " users=carol = 1", "gpu=1 instance=" + gpu02.instance + " users=alice,carol = 2",
		},
		`sort_desc(ds01_gpu_memory_unattributed_bytes > 1073741824)`: {"gpu=2 instance=" + gpu01.instance + " = 3221225472"},
	} {
		got, err := p.query(ctx, expr)
		if err != nil {
			t.Fatal(err)
		}
		if lines := render(got, "gpus", "gpu", "id", "instance", "user", "users"); !sameLines(lines, want) {
			t.Errorf("%s answered\n\t%s\nwant\n\t%s", expr, strings.Join(lines, "\n\t"), strings.Join(want, "\n\t"))
		}
	}

	// The rules' copy waits seconds, not minutes: carol's undeclared use
	// on gpu02 must fire.
	var fired time.Duration
	p.await(t, ctx, "DS01UndeclaredGPUUse firing for carol on "+gpu02.instance, func() bool {
		alerts, err := p.alerts(ctx)
		if err != nil {
			return false
		}
		for _, a := range alerts {
			if a.Labels["alertname"] == "DS01UndeclaredGPUUse" && a.State == "firing" &&
				a.Labels["instance"] == gpu02.instance && a.Labels["id"] == carol[:12] {
				fired = time.Since(scraped)
				return true
			}
		}
		return false
	})
	t.Logf("DS01UndeclaredGPUUse firing %s after the first scrape", fired.Round(100*time.Millisecond))

	checkDashboard(t, ctx, p, servers)
}

// freeAddr returns a 127.0.0.1 address with a port nothing listens on.
func freeAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// startDaemon starts a long-running command, its output kept for the log,
// and stops it when the test ends, however it ends.
func startDaemon(t *testing.T, what, bin string, args ...string) {
	t.Helper()
	out, err := os.CreateTemp(t.TempDir(), "daemon-*.log")
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, args...)
	cmd.Stdout, cmd.Stderr = out, out
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", what, err)
	}
	t.Cleanup(func() {
		syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		cmd.Wait()
		if t.Failed() {
			log, _ := os.ReadFile(out.Name())
			t.Logf("%s's output:\n%s", what, clipTail(log))
		}
		out.Close()
	})
}

// promServer is a running Prometheus.
type promServer struct {
	url    string
	client *http.Client
}

// startPrometheus runs Prometheus scraping the servers' node_exporters every
// second, with the shipped rules but every `for:` cut to seconds.
func startPrometheus(t *testing.T, bin string, servers []*fleetServer) *promServer {
	t.Helper()
	dir := t.TempDir()
	rules, err := os.ReadFile(filepath.Join(deployRepo(t), "deploy/prometheus/ds01-rules.yml"))
	if err != nil {
		t.Fatal(err)
	}
	forLine := regexp.MustCompile(`(?m)^(\s+for:) \S+$`)
	if !forLine.Match(rules) {
		t.Fatal("ds01-rules.yml has no for: to shorten")
	}
	rules = forLine.ReplaceAll(rules, []byte("$1 2s"))
	rulesFile := filepath.Join(dir, "ds01-rules.yml")
	if err := os.WriteFile(rulesFile, rules, 0o644); err != nil {
		t.Fatal(err)
	}
	var targets []string
	for _, s := range servers {
		targets = append(targets, "'"+s.instance+"'")
	}
	config := fmt.Sprintf(`global:
  scrape_interval: 1s
  scrape_timeout: 1s
  evaluation_interval: 1s
rule_files: [%q]
scrape_configs:
  - job_name: node
    static_configs:
      - targets: [%s]
`, rulesFile, strings.Join(targets, ", "))
	configFile := filepath.Join(dir, "prometheus.yml")
	if err := os.WriteFile(configFile, []byte(config), 0o644); err != nil {
		t.Fatal(err)
	}
	addr := freeAddr(t)
	startDaemon(t, "prometheus "+addr, bin, "--config.file="+configFile,
		"--storage.tsdb.path="+filepath.Join(dir, "data"), "--web.listen-address="+addr)
	p := &promServer{url: "http://" + addr, client: &http.Client{Timeout: 5 * time.Second}}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	p.await(t, ctx, "prometheus ready", func() bool {
		resp, err := p.client.Get(p.url + "/-/ready")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	})
	return p
}

// await polls ok until it holds or ctx ends, which fails the test.
func (p *promServer) await(t *testing.T, ctx context.Context, what string, ok func() bool) {
	t.Helper()
	for !ok() {
		select {
		case <-ctx.Done():
			t.Fatalf("timed out waiting for %s", what)
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// promSeries is one series of an instant vector.
type promSeries struct {
	Metric map[string]string `json:"metric"`
	Value  [2]any            `json:"value"`
}

func (s promSeries) value() float64 {
	v, _ := s.Value[1].(string)
	f, err := strconv.ParseFloat(v, 64)
	if err != nil {
		return -1
	}
	return f
}

// api GETs one endpoint of Prometheus's HTTP API and decodes its data.
func (p *promServer) api(ctx context.Context, path string, params url.Values, data any) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, p.url+path+"?"+params.Encode(), nil)
	if err != nil {
		return err
	}
	resp, err := p.client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return err
	}
	var envelope struct {
		Status string          `json:"status"`
		Error  string          `json:"error"`
		Data   json.RawMessage `json:"data"`
	}
	if err := json.Unmarshal(body, &envelope); err != nil {
		return fmt.Errorf("%s: HTTP %d: %s", path, resp.StatusCode, clipTail(body))
	}
	if envelope.Status != "success" {
		return fmt.Errorf("%s: %s", path, envelope.Error)
	}
	return json.Unmarshal(envelope.Data, data)
}

// query evaluates expr now; anything but an instant vector is an error.
func (p *promServer) query(ctx context.Context, expr string) ([]promSeries, error) {
	var data struct {
		ResultType string          `json:"resultType"`
		Result     json.RawMessage `json:"result"`
	}
	if err := p.api(ctx, "/api/v1/query", url.Values{"query": {expr}}, &data); err != nil {
		return nil, err
	}
	if data.ResultType != "vector" {
		return nil, fmt.Errorf("a %s, not a vector", data.ResultType)
	}
	var series []promSeries
	return series, json.Unmarshal(data.Result, &series)
}

type promAlert struct {
	Labels map[string]string `json:"labels"`
	State  string            `json:"state"`
}

func (p *promServer) alerts(ctx context.Context) ([]promAlert, error) {
	var data struct {
		Alerts []promAlert `json:"alerts"`
	}
	err := p.api(ctx, "/api/v1/alerts", nil, &data)
	return data.Alerts, err
}

// labelValues is Grafana's label_values(metric, label).
func (p *promServer) labelValues(ctx context.Context, metric, label string) ([]string, error) {
	var values []string
	err := p.api(ctx, "/api/v1/label/"+label+"/values", url.Values{"match[]": {metric}}, &values)
	return values, err
}

// render writes each series as its labels among keys, name=value in that
// order, and its value, sorted.
func render(series []promSeries, keys ...string) []string {
	var lines []string
	for _, s := range series {
		var parts []string
		for _, k := range keys {
			if v, ok := s.Metric[k]; ok {
				parts = append(parts, k+"="+v)
			}
		}
		lines = append(lines, strings.Join(parts, " ")+" = "+strconv.FormatFloat(s.value(), 'f', -1, 64))
	}
	sort.Strings(lines)
	return lines
}

func sameLines(a, b []string) bool {
	a, b = slices.Clone(a), slices.Clone(b)
	sort.Strings(a)
	sort.Strings(b)
	return slices.Equal(a, b)
}

func sortedDesc(series []promSeries) bool {
	return slices.IsSortedFunc(series, func(a, b promSeries) int {
		switch {
		case a.value() > b.value():
			return -1
		case a.value() < b.value():
			return 1
		}
		return 0
	})
}

// readmeQuestion is one question of the README's Prometheus section: its
// comment and the PromQL under it.
type readmeQuestion struct {
	question, expr string
}

// readmeQuestions reads the ```promql block of the README's Prometheus
// section, so that the queries asked are the README's to the character.
func readmeQuestions(t *testing.T) []readmeQuestion {
	t.Helper()
	f, err := os.Open(filepath.Join(deployRepo(t), "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var out []readmeQuestion
	section, block, question := false, false, ""
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := sc.Text()
		switch {
		case strings.HasPrefix(line, "## "):
			section = line == "## Prometheus"
		case !section:
		case line == "```promql":
			block = true
		case block && line == "```":
			block = false
		case block && strings.HasPrefix(line, "# "):
			question = strings.TrimPrefix(line, "# ")
		case block && strings.TrimSpace(line) != "":
			out = append(out, readmeQuestion{question: question, expr: line})
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

// fleetAnswer is what one query must return: its series rendered by keys.
type fleetAnswer struct {
	keys   []string
	lines  []string
	sorted bool
}

func (a fleetAnswer) render(series []promSeries) []string { return render(series, a.keys...) }

// fleetFacts are the scans' series, one entry per series ds01.prom holds.
type fleetFacts struct {
	// onGPU: one per running workload and GPU it declared or uses.
	onGPU []workloadOnGPU
	// ledger: one per GPU; undeclared, idle and sources as written.
	ledger     []gpuPage
	undeclared []workloadOnGPU
	idle       map[[2]string]bool
	sources    []string
}

type workloadOnGPU struct {
	instance, gpu, gpus, user, typ, name, id string
	memory                                   uint64
}

type gpuPage struct {
	instance, gpu, users string
	holders              int
	unattributed         *uint64
}

// fleetExpectations reads the scans the way ds01.prom is written from them.
func fleetExpectations(servers []*fleetServer) fleetFacts {
	f := fleetFacts{idle: map[[2]string]bool{}}
	for _, s := range servers {
		workloads := s.inv.Workloads()
		userOf := map[string]string{}
		for _, wl := range workloads {
			userOf[wl.ID] = wl.User
			if !wl.HasGPU || wl.Status != "running" {
				continue
			}
			id, mem := wl.ID, map[string]uint64{}
			if c := find(s.inv, wl.ID); c != nil {
				id = inventory.ShortID(wl.ID)
				for _, p := range c.GPUProcesses {
					if p.MemoryBytes != nil {
						mem[p.GPU] += *p.MemoryBytes
					}
				}
			} else if wl.GPUMemoryBytes != nil && len(wl.GPUs) == 1 {
				mem[wl.GPUs[0]] = *wl.GPUMemoryBytes
			}
			for _, gpu := range wl.GPUs {
				f.onGPU = append(f.onGPU, workloadOnGPU{instance: s.instance, gpu: gpu, user: wl.User, typ: wl.Type,
					name: wl.Name, id: id, memory: mem[gpu]})
			}
			if wl.GPUAccess == inventory.AccessUndeclared {
				f.undeclared = append(f.undeclared, workloadOnGPU{instance: s.instance, id: id, user: wl.User,
					gpus: strings.Join(wl.GPUsUndeclared, ",")})
			}
			if wl.GPUIdle {
				f.idle[[2]string{s.instance, id}] = true
			}
		}
		for _, a := range s.inv.GPULedger(workloads) {
			var users []string
			for _, id := range a.Holders() {
				users = append(users, userOf[id])
			}
			slices.Sort(users)
			f.ledger = append(f.ledger, gpuPage{instance: s.instance, gpu: a.Device.ID,
				users: strings.Join(slices.Compact(users), ","), holders: len(a.Holders()), unattributed: a.UnattributedBytes})
		}
		for name, st := range s.inv.Sources {
			if !st.OK {
				f.sources = append(f.sources, fmt.Sprintf("instance=%s source=%s = 0", s.instance, name))
			} else if st.Warning != "" {
				f.sources = append(f.sources, fmt.Sprintf("instance=%s source=%s = 1", s.instance, name))
			}
		}
	}
	return f
}

// answer is what the README's question must answer, by the start of its
// comment; false for a question this test does not know.
func (f fleetFacts) answer(question string) (fleetAnswer, bool) {
	line := func(parts ...string) string {
		value := parts[len(parts)-1]
		return strings.Join(parts[:len(parts)-1], " ") + " = " + value
	}
	num := func(v uint64) string { return strconv.FormatUint(v, 10) }
	var a fleetAnswer
	switch {
	case strings.HasPrefix(question, "Who is on which GPU"):
		a.keys, a.sorted = []string{"instance", "gpu", "user", "type", "name"}, true
		sums := map[string]uint64{}
		for _, w := range f.onGPU {
			sums[line("instance="+w.instance, "gpu="+w.gpu, "user="+w.user, "type="+w.typ, "name="+w.name, "")] += w.memory
		}
		for k, v := range sums {
			a.lines = append(a.lines, k+num(v))
		}
	case strings.HasPrefix(question, "GPUs per user"):
		a.keys = []string{"user"}
		per := map[string]uint64{}
		for _, w := range f.onGPU {
			per[w.user]++
		}
		for u, n := range per {
			a.lines = append(a.lines, line("user="+u, num(n)))
		}
	case strings.HasPrefix(question, "Idle GPUs"):
		a.keys = []string{"instance", "id", "gpu"}
		for _, w := range f.onGPU {
			if f.idle[[2]string{w.instance, w.id}] {
				a.lines = append(a.lines, line("instance="+w.instance, "id="+w.id, "gpu="+w.gpu, num(w.memory)))
			}
		}
	case strings.HasPrefix(question, "Undeclared use"):
		a.keys = []string{"instance", "id", "user", "gpus"}
		for _, w := range f.undeclared {
			a.lines = append(a.lines, line("instance="+w.instance, "id="+w.id, "user="+w.user, "gpus="+w.gpus, "1"))
		}
	case strings.HasPrefix(question, "Who holds each GPU"):
		a.keys = []string{"instance", "gpu", "users"}
		for _, g := range f.ledger {
			if g.holders > 0 {
				a.lines = append(a.lines, line("instance="+g.instance, "gpu="+g.gpu, "users="+g.users, strconv.Itoa(g.holders)))
			}
		}
	case strings.HasPrefix(question, "GPU memory nobody accounts for"):
		a.keys, a.sorted = []string{"instance", "gpu"}, true
		for _, g := range f.ledger {
			if g.unattributed != nil && *g.unattributed > inventory.DefaultUnattributedThreshold {
				a.lines = append(a.lines, line("instance="+g.instance, "gpu="+g.gpu, num(*g.unattributed)))
			}
		}
	case strings.HasPrefix(question, "Held outside the lab's tooling"):
		a.keys = []string{"instance", "id", "type", "gpu"}
		for _, w := range f.onGPU {
			if w.typ == "raw-docker" || w.typ == "unknown" || w.typ == inventory.TypeHostProcess {
				a.lines = append(a.lines, line("instance="+w.instance, "id="+w.id, "type="+w.typ, "gpu="+w.gpu, num(w.memory)))
			}
		}
	case strings.HasPrefix(question, "Which servers' scanners are stale"),
		strings.HasPrefix(question, "... or whose ds01 metrics vanished"):
		// The scans are seconds old and both servers still serve them.
		a.keys = []string{"instance"}
	case strings.HasPrefix(question, "... and which sources are down"):
		a.keys, a.lines = []string{"instance", "source"}, f.sources
	case strings.HasPrefix(question, "Free GPUs"):
		a.keys = []string{"instance", "gpu", "users"}
		for _, g := range f.ledger {
			if g.holders == 0 {
				// An empty label is no label in Prometheus.
				a.lines = append(a.lines, line("instance="+g.instance, "gpu="+g.gpu, "0"))
			}
		}
	case strings.HasPrefix(question, "... and how many each server has"):
		a.keys = []string{"instance"}
		free := map[string]int{}
		for _, g := range f.ledger {
			if g.holders == 0 {
				free[g.instance]++
			}
		}
		for i, n := range free {
			a.lines = append(a.lines, line("instance="+i, strconv.Itoa(n)))
		}
	default:
		return a, false
	}
	sort.Strings(a.lines)
	return a, true
}

// grafanaDashboard is the part of a dashboard's JSON that queries.
type grafanaDashboard struct {
	Panels     []grafanaPanel `json:"panels"`
	Templating struct {
		List []struct {
			Name  string          `json:"name"`
			Type  string          `json:"type"`
			Query json.RawMessage `json:"query"`
		} `json:"list"`
	} `json:"templating"`
}

type grafanaPanel struct {
	Title      string `json:"title"`
	Datasource struct {
		Type string `json:"type"`
		UID  string `json:"uid"`
	} `json:"datasource"`
	Targets []struct {
		RefID string `json:"refId"`
		Expr  string `json:"expr"`
	} `json:"targets"`
	// Panels are a collapsed row's.
	Panels []grafanaPanel `json:"panels"`
}

// checkDashboard evaluates every variable's query and every panel's target
// of deploy/grafana/ds01.json against p, as Grafana would with every server
// selected. Each must evaluate, and return series: the fleet has something
// for every panel to show. Series that need samples to accumulate (GPU
// hours integrates over steps of $__interval) are waited for.
func checkDashboard(t *testing.T, ctx context.Context, p *promServer, servers []*fleetServer) {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(deployRepo(t), "deploy/grafana/ds01.json"))
	if err != nil {
		t.Fatal(err)
	}
	var d grafanaDashboard
	if err := json.Unmarshal(data, &d); err != nil {
		t.Fatalf("deploy/grafana/ds01.json: %v", err)
	}
	var instances []string
	for _, s := range servers {
		// In a PromQL string a regex's backslash is written twice, as
		// Grafana writes a multi-value variable.
		instances = append(instances, strings.ReplaceAll(regexp.QuoteMeta(s.instance), `\`, `\\`))
	}
	labelValues := regexp.MustCompile(`^label_values\(\s*([a-zA-Z_:][a-zA-Z0-9_:]*)\s*,\s*([a-zA-Z_][a-zA-Z0-9_]*)\s*\)$`)
	vars := map[string]bool{}
	for _, v := range d.Templating.List {
		vars[v.Name] = true
		switch v.Type {
		case "datasource":
			var q string
			if json.Unmarshal(v.Query, &q); q != "prometheus" {
				t.Errorf("variable %s: datasource of type %q, want prometheus", v.Name, q)
			}
		case "query":
			var q struct {
				Query string `json:"query"`
			}
			if err := json.Unmarshal(v.Query, &q); err != nil {
				json.Unmarshal(v.Query, &q.Query)
			}
			m := labelValues.FindStringSubmatch(q.Query)
			if m == nil {
				t.Errorf("variable %s: query %q is not label_values(metric, label)", v.Name, q.Query)
				continue
			}
			got, err := p.labelValues(ctx, m[1], m[2])
			if err != nil {
				t.Errorf("variable %s: %s: %v", v.Name, q.Query, err)
				continue
			}
			sort.Strings(got)
			want := []string{servers[0].instance, servers[1].instance}
			sort.Strings(want)
			if !slices.Equal(got, want) {
				t.Errorf("variable %s: %s gives %v, want the servers %v", v.Name, q.Query, got, want)
			}
			t.Logf("variable %s: %s → %v", v.Name, q.Query, got)
		default:
			t.Errorf("variable %s of type %s: the test does not know it", v.Name, v.Type)
		}
	}
	if !vars["datasource"] || !vars["instance"] {
		t.Errorf("the dashboard's variables %v lack datasource or instance", vars)
	}
	// Longest first: $__interval_ms is not $__interval followed by _ms.
	substitute := strings.NewReplacer(
		"${instance}", "("+strings.Join(instances, "|")+")", "$instance", "("+strings.Join(instances, "|")+")",
		"$__range_ms", "300000", "$__range_s", "300", "$__range", "5m",
		"$__interval_ms", "15000", "$__interval", "15s", "$__rate_interval", "1m",
	)
	var panels []grafanaPanel
	var walk func([]grafanaPanel)
	walk = func(ps []grafanaPanel) {
		for _, pl := range ps {
			panels = append(panels, pl)
			walk(pl.Panels)
		}
	}
	walk(d.Panels)
	targets := 0
	for _, pl := range panels {
		if len(pl.Targets) == 0 {
			continue
		}
		if pl.Datasource.UID != "${datasource}" {
			t.Errorf("panel %q: datasource %q, want the ${datasource} variable", pl.Title, pl.Datasource.UID)
		}
		for _, tg := range pl.Targets {
			targets++
			expr := substitute.Replace(tg.Expr)
			if strings.Contains(expr, "$") {
				t.Errorf("panel %q target %s: variable left after substitution: %s", pl.Title, tg.RefID, expr)
				continue
			}
			var series []promSeries
			var lastErr error
			p.await(t, ctx, fmt.Sprintf("series from panel %q target %s: %s", pl.Title, tg.RefID, expr), func() bool {
				series, lastErr = p.query(ctx, expr)
				return lastErr != nil || len(series) > 0
			})
			if lastErr != nil {
				t.Errorf("panel %q target %s: %s: %v", pl.Title, tg.RefID, expr, lastErr)
				continue
			}
			t.Logf("panel %q target %s: %d series", pl.Title, tg.RefID, len(series))
		}
	}
	if targets == 0 {
		t.Error("the dashboard has no panel with a query")
	}
}
