package main

// The end-to-end test: real fednode processes on loopback, driven only by
// the CLI (plus raw HTTP where the test plays a hostile client). The binary
// is built once in TestMain.

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/fednode/fednode/authority"
	"github.com/fednode/fednode/node"
)

// Generous bounds: they only stop a broken run, they assert nothing about speed.
const (
	cliTimeout      = 60 * time.Second // one CLI invocation
	readyTimeout    = 60 * time.Second // three nodes agree on three geneses
	agreeTimeout    = 10 * time.Second // a declaration is agreed at a node
	revokeDeadline  = 10 * time.Second // hard deadline for "denies revoked"
	failoverTimeout = 45 * time.Second // new leader elected and a declaration agreed
	catchUpTimeout  = 45 * time.Second // a restarted node catches up
	stopTimeout     = 15 * time.Second // graceful stop after SIGTERM
	pollEvery       = 50 * time.Millisecond
	logTail         = 40 // lines of each node's log shown on failure
)

// fednodeBin is the binary built by TestMain.
var fednodeBin string

func TestMain(m *testing.M) {
	flag.Parse()
	if testing.Short() {
		os.Exit(m.Run())
	}
	dir, err := os.MkdirTemp("", "fednode-e2e-bin-")
	if err != nil {
		fmt.Fprintln(os.Stderr, "e2e:", err)
		os.Exit(1)
	}
	fednodeBin = filepath.Join(dir, "fednode")
	build := exec.Command("go", "build", "-o", fednodeBin, ".")
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "e2e: go build ./cmd/fednode:", err)
		os.RemoveAll(dir)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// result is one CLI invocation's outcome.
type result struct {
	args   []string
	stdout string
	stderr string
	code   int
}

func (r result) String() string {
	return fmt.Sprintf("fednode %s: exit %d\nstdout: %s\nstderr: %s", strings.Join(r.args, " "), r.code, r.stdout, r.stderr)
}

// fed runs the CLI once and returns its output and exit code. Safe to call
// from any goroutine (it never calls t.Fatal).
func fed(args ...string) (result, error) {
	ctx, cancel := context.WithTimeout(context.Background(), cliTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, fednodeBin, args...)
	var o, e bytes.Buffer
	cmd.Stdout, cmd.Stderr = &o, &e
	cmd.WaitDelay = 5 * time.Second
	err := cmd.Run()
	r := result{args: args, stdout: o.String(), stderr: e.String()}
	if err != nil {
		var ee *exec.ExitError
		if !errors.As(err, &ee) || ee.ExitCode() < 0 {
			return r, fmt.Errorf("fednode %s: %w (stderr: %s)", strings.Join(args, " "), err, e.String())
		}
		r.code = ee.ExitCode()
	}
	return r, nil
}

// cli runs the CLI and fails the test only if it could not run at all.
func cli(t *testing.T, args ...string) result {
	t.Helper()
	r, err := fed(args...)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// mustCLI runs the CLI and fails the test unless it exits 0.
func mustCLI(t *testing.T, args ...string) result {
	t.Helper()
	r := cli(t, args...)
	if r.code != 0 {
		t.Fatalf("want exit 0: %v", r)
	}
	return r
}

// proc is one `fednode run` process.
type proc struct {
	cmd  *exec.Cmd
	done chan struct{}
	err  error // set when done is closed
}

func startProc(t *testing.T, logPath string, args ...string) *proc {
	t.Helper()
	f, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close() // the child holds its own descriptor
	fmt.Fprintf(f, "=== e2e: fednode %s\n", strings.Join(args, " "))
	cmd := exec.Command(fednodeBin, args...)
	cmd.Stdout, cmd.Stderr = f, f
	if err := cmd.Start(); err != nil {
		t.Fatalf("start fednode %s: %v", strings.Join(args, " "), err)
	}
	p := &proc{cmd: cmd, done: make(chan struct{})}
	go func() {
		p.err = cmd.Wait()
		close(p.done)
	}()
	return p
}

func (p *proc) running() bool {
	select {
	case <-p.done:
		return false
	default:
		return true
	}
}

// kill sends SIGKILL to this process (by its own pid) and reaps it.
func (p *proc) kill() {
	if p.running() {
		_ = p.cmd.Process.Signal(syscall.SIGKILL)
	}
	<-p.done
}

// stop sends SIGTERM and waits for a clean exit; it kills on timeout.
func (p *proc) stop() error {
	if !p.running() {
		return fmt.Errorf("already exited: %v", p.err)
	}
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
		return p.err
	case <-time.After(stopTimeout):
		p.kill()
		return fmt.Errorf("did not exit within %v of SIGTERM: killed", stopTimeout)
	}
}

// member is one authority's home and, while it runs, its node.
type member struct {
	name, kind string
	home       string
	log        string
	id         string // authority id (hex), from init
	tcp        string // the /ip4/127.0.0.1/tcp/... address printed by init
	api        string // host:port, from HOME/api.addr
	p          *proc
}

var (
	reAuthority  = regexp.MustCompile(`(?m)^authority ([0-9a-f]{64}) \(`)
	reTCPAddr    = regexp.MustCompile(`(?m)^address\s+(/ip4/127\.0\.0\.1/tcp/\d+/p2p/\S+)$`)
	reCredential = regexp.MustCompile(`(?m)^credential ([0-9a-f]{64}) for `)
	reRule       = regexp.MustCompile(`(?m)^rule ([0-9a-f]{64}): `)
	reBundle     = regexp.MustCompile(`(?m)^bundle of graph version (\d+) `)
)

func match1(t *testing.T, re *regexp.Regexp, r result) string {
	t.Helper()
	m := re.FindStringSubmatch(r.stdout)
	if m == nil {
		t.Fatalf("no match for %s in the output of %v", re, r)
	}
	return m[1]
}

func initMember(t *testing.T, dir, name, kind string) *member {
	t.Helper()
	m := &member{name: name, kind: kind, home: filepath.Join(dir, name), log: filepath.Join(dir, name+".log")}
	r := mustCLI(t, "init", "--home", m.home, "--name", name, "--kind", kind)
	m.id = match1(t, reAuthority, r)
	m.tcp = match1(t, reTCPAddr, r)
	return m
}

// run starts the member's node and waits for its API address file.
func (m *member) run(t *testing.T, flags ...string) {
	t.Helper()
	_ = os.Remove(filepath.Join(m.home, "api.addr")) // a SIGKILLed node leaves the old one behind
	m.p = startProc(t, m.log, append([]string{"run", "--home", m.home}, flags...)...)
	poll(t, m.name+" writes api.addr", readyTimeout, func() (bool, string) {
		if !m.p.running() {
			t.Fatalf("%s exited at start: %v", m.name, m.p.err)
		}
		b, err := os.ReadFile(filepath.Join(m.home, "api.addr"))
		if err != nil {
			return false, err.Error()
		}
		m.api = strings.TrimSpace(string(b))
		return m.api != "", "empty api.addr"
	})
}

// status is the part of `status --json` the test reads.
type status struct {
	API  string `json:"api"`
	Raft struct {
		State  string   `json:"state"`
		Leader string   `json:"leader"`
		Voters []string `json:"voters"`
	} `json:"raft"`
	Graph struct {
		Version     uint64 `json:"version"`
		AgeMS       *int64 `json:"age_ms"`
		Authorities int    `json:"authorities"`
	} `json:"graph"`
}

// statusOf runs `fednode status --home H --json`.
func statusOf(m *member) (status, error) {
	var st status
	r, err := fed("status", "--home", m.home, "--json")
	if err != nil {
		return st, err
	}
	if r.code != 0 {
		return st, errors.New(r.String())
	}
	if err := json.Unmarshal([]byte(r.stdout), &st); err != nil {
		return st, fmt.Errorf("status --json of %s: %w: %s", m.name, err, r.stdout)
	}
	return st, nil
}

// decision is the JSON of `verify --json`.
type decision struct {
	Decision     string   `json:"decision"`
	Reason       string   `json:"reason"`
	Message      string   `json:"message"`
	Chain        []string `json:"chain"`
	GraphVersion uint64   `json:"graph_version"`
	GraphAgeMS   int64    `json:"graph_age_ms"`
	raw          result
}

// decisionFields must all be present in verify's JSON.
var decisionFields = []string{"decision", "reason", "message", "chain", "graph_version", "graph_age_ms"}

// verify runs `fednode verify --json` with source flags src ("--api", ADDR or
// "--bundle", FILE) and checks that exit code and JSON agree.
func verify(src []string, cred, at, resource, action string) (decision, error) {
	args := append(append([]string{"verify"}, src...), "--credential", cred, "--at", at, "--resource", resource, "--action", action, "--json")
	r, err := fed(args...)
	if err != nil {
		return decision{}, err
	}
	d := decision{raw: r}
	if r.code != 0 && r.code != 1 {
		return d, fmt.Errorf("want exit 0 or 1: %v", r)
	}
	var fields map[string]json.RawMessage
	if err := json.Unmarshal([]byte(r.stdout), &fields); err != nil {
		return d, fmt.Errorf("verify --json: %w: %v", err, r)
	}
	for _, f := range decisionFields {
		if _, ok := fields[f]; !ok {
			return d, fmt.Errorf("verify --json lacks field %q: %v", f, r)
		}
	}
	if err := json.Unmarshal([]byte(r.stdout), &d); err != nil {
		return d, fmt.Errorf("verify --json: %w: %v", err, r)
	}
	if want := map[string]int{"allow": 0, "deny": 1}[d.Decision]; d.Decision == "" || r.code != want {
		return d, fmt.Errorf("decision %q with exit %d: %v", d.Decision, r.code, r)
	}
	return d, nil
}

func online(m *member) []string    { return []string{"--api", m.api} }
func offline(file string) []string { return []string{"--bundle", file} }

// mustVerify verifies and checks decision and reason.
func mustVerify(t *testing.T, src []string, cred, at, resource, action, wantDecision, wantReason string) decision {
	t.Helper()
	d, err := verify(src, cred, at, resource, action)
	if err != nil {
		t.Fatal(err)
	}
	if d.Decision != wantDecision || d.Reason != wantReason {
		t.Fatalf("want %s (%s), got %s (%s): %s", wantDecision, wantReason, d.Decision, d.Reason, d.Message)
	}
	return d
}

// poll calls f until it reports true, failing the test at the deadline.
func poll(t *testing.T, what string, timeout time.Duration, f func() (bool, string)) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		ok, last := f()
		if ok {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %v; last: %s", what, timeout, last)
		}
		time.Sleep(pollEvery)
	}
}

// pollVerify polls until the decision has the wanted reason.
func pollVerify(t *testing.T, src []string, cred, at, resource, action, wantDecision, wantReason string) decision {
	t.Helper()
	var d decision
	poll(t, fmt.Sprintf("verify %v at %s %s %s -> %s (%s)", src, at, resource, action, wantDecision, wantReason), agreeTimeout, func() (bool, string) {
		var err error
		d, err = verify(src, cred, at, resource, action)
		if err != nil {
			return false, err.Error()
		}
		return d.Decision == wantDecision && d.Reason == wantReason, d.Reason + ": " + d.Message
	})
	return d
}

// sameVersion polls the members' graph versions until they are equal and at
// least min, and returns that version.
func sameVersion(t *testing.T, timeout time.Duration, min uint64, ms ...*member) uint64 {
	t.Helper()
	var v uint64
	poll(t, fmt.Sprintf("graph versions equal and >= %d", min), timeout, func() (bool, string) {
		var seen []string
		v = 0
		ok := true
		for i, m := range ms {
			st, err := statusOf(m)
			if err != nil {
				return false, err.Error()
			}
			seen = append(seen, fmt.Sprintf("%s=%d", m.name, st.Graph.Version))
			if i == 0 {
				v = st.Graph.Version
			}
			ok = ok && st.Graph.Version == v && v >= min
		}
		return ok, strings.Join(seen, " ")
	})
	return v
}

func tail(path string, n int) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return err.Error()
	}
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// verifyHTTP asks a node's POST /v1/verify directly: the revocation latency
// probe, cheaper than a process per poll so the measurement is not dominated
// by process start-up.
func verifyHTTP(c *http.Client, api string, cred []byte, target, resource, action string) (string, error) {
	body, _ := json.Marshal(map[string]string{"credential": base64.StdEncoding.EncodeToString(cred), "target": target, "resource": resource, "action": action})
	resp, err := c.Post("http://"+api+"/v1/verify", "application/json", bytes.NewReader(body))
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	var d decision
	if err := json.NewDecoder(resp.Body).Decode(&d); err != nil {
		return "", err
	}
	return d.Reason, nil
}

// postDeclaration posts raw bytes to /v1/declarations with the home's token.
func postDeclaration(t *testing.T, m *member, body []byte) (int, map[string]any) {
	t.Helper()
	tok, err := os.ReadFile(filepath.Join(m.home, "token"))
	if err != nil {
		t.Fatal(err)
	}
	req, err := http.NewRequest(http.MethodPost, "http://"+m.api+"/v1/declarations", bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/cbor")
	req.Header.Set("Authorization", "Bearer "+strings.TrimSpace(string(tok)))
	resp, err := (&http.Client{Timeout: 30 * time.Second}).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	var out map[string]any
	if err := json.Unmarshal(b, &out); err != nil {
		t.Fatalf("POST /v1/declarations: HTTP %d, body is not JSON: %q", resp.StatusCode, b)
	}
	return resp.StatusCode, out
}

// head reads an authority's chain head from a node's API.
func head(t *testing.T, m *member, ref string) (uint64, authority.ID) {
	t.Helper()
	resp, err := (&http.Client{Timeout: 30 * time.Second}).Get("http://" + m.api + "/v1/authorities/" + ref)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var a struct {
		Head    uint64       `json:"head"`
		HeadID  authority.ID `json:"head_id"`
		Pending bool         `json:"pending"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&a); err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("GET /v1/authorities/%s: HTTP %d: %v", ref, resp.StatusCode, err)
	}
	if a.Pending {
		t.Fatalf("GET /v1/authorities/%s: head %d is pending; want a settled chain", ref, a.Head)
	}
	return a.Head, a.HeadID
}

func readFile(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func writeFile(t *testing.T, path string, b []byte) {
	t.Helper()
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
}

func TestE2EMesh(t *testing.T) {
	if testing.Short() {
		t.Skip("e2e: starts real fednode processes; skipped under -short")
	}
	began := time.Now()
	dir := t.TempDir()

	const (
		etlSubject     = "arn:aws:iam::111122223333:role/etl-nightly"
		adminSubject   = "arn:aws:iam::111122223333:role/admin"
		analystSubject = "arn:aws:iam::111122223333:role/analyst-eu"
		corpData       = "blob://corp-data/x"
		analytics      = "bq://analytics/events"
	)
	var (
		aws, azure, gcp *member
		all             []*member
		rogue           *member                         // a 4th home that never runs
		cred            = filepath.Join(dir, "cred")    // etl, revoked in step 4
		cred2           = filepath.Join(dir, "etl2")    // etl, never revoked
		admin           = filepath.Join(dir, "admin")   // matches no rule
		analyst         = filepath.Join(dir, "analyst") // for the rule federated during the crash
		bundle1         = filepath.Join(dir, "b1.bundle")
		credID, ruleID  string
		bundleVersion   uint64
		onlineEtl2      decision
		onlineAdmin     decision
		onlineRevoked   decision
		analystTarget   string // the survivor that federated analysts during the crash
	)

	t.Cleanup(func() {
		for _, m := range all {
			if m.p != nil {
				m.p.kill()
			}
		}
		if t.Failed() {
			for _, m := range all {
				t.Logf("--- last %d lines of %s's log (%s) ---\n%s", logTail, m.name, m.log, tail(m.log, logTail))
			}
		}
		t.Logf("e2e total time %v", time.Since(began).Round(time.Millisecond))
	})

	// step runs one part of the story; a failed part ends the test.
	step := func(name string, f func(t *testing.T)) {
		t.Helper()
		if !t.Run(name, f) {
			t.FailNow()
		}
	}

	step("1-three-processes-agree", func(t *testing.T) {
		aws = initMember(t, dir, "aws-prod", "aws")
		azure = initMember(t, dir, "azure-corp", "azure")
		gcp = initMember(t, dir, "gcp-analytics", "gcp")
		all = []*member{aws, azure, gcp}
		aws.run(t, "--bootstrap")
		azure.run(t, "--join", aws.tcp)
		gcp.run(t, "--join", aws.tcp)
		for _, m := range all {
			poll(t, m.name+" sees 3 voters and 3 authorities", readyTimeout, func() (bool, string) {
				if !m.p.running() {
					t.Fatalf("%s exited: %v", m.name, m.p.err)
				}
				st, err := statusOf(m)
				if err != nil {
					return false, err.Error()
				}
				if st.API != m.api {
					t.Fatalf("%s: status api %q, api.addr %q", m.name, st.API, m.api)
				}
				return len(st.Raft.Voters) == 3 && st.Graph.Authorities == 3,
					fmt.Sprintf("state %s, %d voters, %d authorities, version %d", st.Raft.State, len(st.Raft.Voters), st.Graph.Authorities, st.Graph.Version)
			})
		}
		sameVersion(t, agreeTimeout, 3, all...)
	})

	step("2-federate-issue-verify-at-third-node", func(t *testing.T) {
		r := mustCLI(t, "federate", "--home", azure.home, "--accept", "aws-prod",
			"--subjects", "arn:aws:iam::111122223333:role/etl-*", "--resources", "blob://corp-data/*", "--actions", "read", "--until", "720h")
		ruleID = match1(t, reRule, r)
		credID = match1(t, reCredential, mustCLI(t, "issue", "--home", aws.home, "--subject", etlSubject, "--ttl", "1h", "--out", cred))
		mustCLI(t, "issue", "--home", aws.home, "--subject", adminSubject, "--ttl", "1h", "--out", admin)
		// A credential has no serial: the same subject, second and ttl sign
		// the same bytes (Ed25519 is deterministic), so etl2 differs by its ttl.
		cred2ID := match1(t, reCredential, mustCLI(t, "issue", "--home", aws.home, "--subject", etlSubject, "--ttl", "2h", "--out", cred2))
		if cred2ID == credID {
			t.Fatalf("two issues gave one credential id %s", credID)
		}
		d := pollVerify(t, online(gcp), cred, "azure-corp", corpData, "read", "allow", "ok")
		if want := []string{aws.id, credID, azure.id, ruleID}; strings.Join(d.Chain, ",") != strings.Join(want, ",") {
			t.Fatalf("chain %v, want [aws-prod root, credential, azure-corp root, rule] %v", d.Chain, want)
		}
		if d.GraphVersion < 4 || d.Message == "" {
			t.Fatalf("graph_version %d (want >= 4), message %q", d.GraphVersion, d.Message)
		}
		t.Logf("allow at gcp-analytics: %s (graph version %d, age %d ms)", d.Message, d.GraphVersion, d.GraphAgeMS)
	})

	step("3-denials-at-every-node", func(t *testing.T) {
		for _, m := range all {
			pollVerify(t, online(m), cred, "azure-corp", corpData, "read", "allow", "ok")
		}
		for _, m := range all {
			for _, tc := range []struct {
				name, cred, at, resource, action, reason string
			}{
				{"admin-subject", admin, "azure-corp", corpData, "read", "subject-not-allowed"},
				{"hr-resource", cred, "azure-corp", "blob://hr/x", "read", "resource-not-allowed"},
				{"write-action", cred, "azure-corp", corpData, "write", "action-not-allowed"},
				{"gcp-target", cred, "gcp-analytics", analytics, "read", "no-rule"},
			} {
				t.Run(m.name+"/"+tc.name, func(t *testing.T) {
					mustVerify(t, online(m), tc.cred, tc.at, tc.resource, tc.action, "deny", tc.reason)
				})
			}
		}
	})

	step("4-revocation-reaches-every-node", func(t *testing.T) {
		raw := readFile(t, cred)
		v0 := sameVersion(t, agreeTimeout, 4, all...)
		called := time.Now()
		mustCLI(t, "revoke", "--home", aws.home, "--id", credID, "--reason", "e2e: key leaked")
		exited := time.Now()
		t.Logf("revoke ran for %v (process start-up, sign, submit, gossip publish)", exited.Sub(called).Round(100*time.Microsecond))
		lat := make([]time.Duration, len(all))
		errs := make([]error, len(all))
		var wg sync.WaitGroup
		for i, m := range all {
			wg.Add(1)
			go func() {
				defer wg.Done()
				c := &http.Client{Timeout: 5 * time.Second}
				for {
					reason, err := verifyHTTP(c, m.api, raw, "azure-corp", corpData, "read")
					if err == nil && reason == "revoked" {
						lat[i] = time.Since(exited)
						return
					}
					if time.Now().After(exited.Add(revokeDeadline)) { // a poll deadline, not a speed assertion
						errs[i] = fmt.Errorf("%s still says %q (err %v) %v after revoke exited", m.name, reason, err, revokeDeadline)
						return
					}
					time.Sleep(2 * time.Millisecond)
				}
			}()
		}
		wg.Wait()
		for i, m := range all {
			if errs[i] != nil {
				t.Error(errs[i])
				continue
			}
			t.Logf("revocation latency at %-13s %v (from revoke's exit to its first revoked answer)", m.name, lat[i].Round(100*time.Microsecond))
		}
		if t.Failed() {
			t.FailNow()
		}
		for _, m := range all {
			mustVerify(t, online(m), cred, "azure-corp", corpData, "read", "deny", "revoked")
			mustVerify(t, online(m), cred2, "azure-corp", corpData, "read", "allow", "ok")
		}
		// The revocation is agreed, not only provisional, before the export.
		sameVersion(t, agreeTimeout, v0+1, all...)
	})

	step("5-export-bundle", func(t *testing.T) {
		v := sameVersion(t, agreeTimeout, 5, all...)
		r := mustCLI(t, "bundle", "export", "--api", gcp.api, "--out", bundle1)
		n, err := strconv.ParseUint(match1(t, reBundle, r), 10, 64)
		if err != nil {
			t.Fatal(err)
		}
		if n != v {
			t.Fatalf("bundle of version %d, agreed version %d", n, v)
		}
		bundleVersion = n
		onlineEtl2 = mustVerify(t, online(gcp), cred2, "azure-corp", corpData, "read", "allow", "ok")
		onlineRevoked = mustVerify(t, online(gcp), cred, "azure-corp", corpData, "read", "deny", "revoked")
		onlineAdmin = mustVerify(t, online(gcp), admin, "azure-corp", corpData, "read", "deny", "subject-not-allowed")
	})

	step("6-leader-crash-and-restart", func(t *testing.T) {
		var leader *member
		poll(t, "one node is the Raft leader", failoverTimeout, func() (bool, string) {
			var seen []string
			for _, m := range all {
				st, err := statusOf(m)
				if err != nil {
					return false, err.Error()
				}
				seen = append(seen, m.name+"="+st.Raft.State)
				if st.Raft.State == "leader" {
					leader = m
				}
			}
			return leader != nil, strings.Join(seen, " ")
		})
		var survivors []*member
		for _, m := range all {
			if m != leader {
				survivors = append(survivors, m)
			}
		}
		before := sameVersion(t, agreeTimeout, bundleVersion, all...)
		t.Logf("killing the leader %s (pid %d) with SIGKILL", leader.name, leader.p.cmd.Process.Pid)
		leader.p.kill()

		// Verification is local: it works at once, with no leader.
		for _, m := range survivors {
			mustVerify(t, online(m), cred2, "azure-corp", corpData, "read", "allow", "ok")
			mustVerify(t, online(m), cred, "azure-corp", corpData, "read", "deny", "revoked")
		}
		// Declarations are still accepted and agreed by the two survivors.
		fedAt := survivors[0]
		for _, m := range survivors {
			if m == gcp {
				fedAt = m
			}
		}
		analystTarget = fedAt.name
		mustCLI(t, "federate", "--home", fedAt.home, "--accept", "aws-prod",
			"--subjects", "arn:aws:iam::111122223333:role/analyst-*", "--resources", "bq://analytics/*", "--actions", "read,query")
		mustCLI(t, "issue", "--home", aws.home, "--subject", analystSubject, "--ttl", "1h", "--out", analyst)
		after := sameVersion(t, failoverTimeout, before+1, survivors...)
		for _, m := range survivors {
			pollVerify(t, online(m), analyst, fedAt.name, analytics, "query", "allow", "ok")
		}
		t.Logf("survivors agreed version %d (was %d) without %s", after, before, leader.name)

		// The killed node restarts from its home alone and catches up.
		leader.run(t)
		poll(t, leader.name+" catches up after restart", catchUpTimeout, func() (bool, string) {
			if !leader.p.running() {
				t.Fatalf("%s exited after restart: %v", leader.name, leader.p.err)
			}
			st, err := statusOf(leader)
			if err != nil {
				return false, err.Error()
			}
			return st.Graph.Version >= after && len(st.Raft.Voters) == 3, fmt.Sprintf("state %s, version %d (want %d), %d voters", st.Raft.State, st.Graph.Version, after, len(st.Raft.Voters))
		})
		sameVersion(t, agreeTimeout, after, all...)
		pollVerify(t, online(leader), analyst, fedAt.name, analytics, "query", "allow", "ok")
		mustVerify(t, online(leader), cred, "azure-corp", corpData, "read", "deny", "revoked")
	})

	step("7-tampered-input-refused", func(t *testing.T) {
		rogue = initMember(t, dir, "rogue-idp", "oidc")
		good := readFile(t, cred2)
		v := sameVersion(t, agreeTimeout, bundleVersion+1, all...)
		azHead, azHeadID := head(t, azure, "azure-corp")

		flipped := append([]byte(nil), good...)
		flipped[len(flipped)/2] ^= 0x01
		truncated := good[:len(good)/2]
		writeFile(t, filepath.Join(dir, "flipped"), flipped)
		writeFile(t, filepath.Join(dir, "truncated"), truncated)
		mustCLI(t, "issue", "--home", rogue.home, "--subject", etlSubject, "--ttl", "1h", "--out", filepath.Join(dir, "rogue-cred"))

		for _, tc := range []struct {
			name    string
			file    string
			reasons []string
		}{
			{"flipped-byte", "flipped", []string{"bad-signature", "malformed"}},
			{"unknown-authority", "rogue-cred", []string{"unknown-authority"}},
			{"truncated", "truncated", []string{"malformed"}},
		} {
			t.Run(tc.name, func(t *testing.T) {
				d, err := verify(online(azure), filepath.Join(dir, tc.file), "azure-corp", corpData, "read")
				if err != nil {
					t.Fatal(err)
				}
				if d.Decision != "deny" || !slices.Contains(tc.reasons, d.Reason) {
					t.Fatalf("want deny with one of %v, got %s (%s): %s", tc.reasons, d.Decision, d.Reason, d.Message)
				}
				if d.Message == "" {
					t.Fatalf("deny %s without a message", d.Reason)
				}
				t.Logf("%s: deny (%s): %s", tc.name, d.Reason, d.Message)
			})
		}

		t.Run("garbage-declaration", func(t *testing.T) {
			code, body := postDeclaration(t, azure, []byte("\x00\xffthis is not a COSE envelope\x13\x37"))
			if code != http.StatusBadRequest || body["error"] == nil || body["error"] == "" {
				t.Fatalf("want HTTP 400 with a JSON error, got %d %v", code, body)
			}
			t.Logf("garbage: HTTP %d: %v", code, body["error"])
		})

		t.Run("forged-declaration", func(t *testing.T) {
			rh, err := node.LoadHome(rogue.home)
			if err != nil {
				t.Fatal(err)
			}
			azID, _ := authority.ParseID(azure.id)
			awsID, _ := authority.ParseID(aws.id)
			forged, err := authority.Sign(authority.Declaration{
				Kind: authority.KindRule, Authority: azID, Seq: azHead + 1, Prev: azHeadID, IssuedAt: time.Now().Unix(),
				Rule: &authority.Rule{Source: awsID, Subjects: "*", Resources: "*", Actions: []string{"read", "write"}},
			}, rh.Root)
			if err != nil {
				t.Fatal(err)
			}
			for _, m := range all {
				code, body := postDeclaration(t, m, forged.Raw)
				if code != http.StatusBadRequest || body["error"] == nil || body["error"] == "" {
					t.Fatalf("%s: want HTTP 400 with a JSON error, got %d %v", m.name, code, body)
				}
				t.Logf("forged at %s: HTTP %d: %v", m.name, code, body["error"])
			}
		})

		// Nothing was stored: versions and azure-corp's head are unchanged, the
		// forged rule grants nothing, and azure-corp's next position is still free.
		for _, m := range all {
			st, err := statusOf(m)
			if err != nil {
				t.Fatal(err)
			}
			if st.Graph.Version != v {
				t.Fatalf("%s: graph version %d after refused input, was %d", m.name, st.Graph.Version, v)
			}
			if h, id := head(t, m, "azure-corp"); h != azHead || id != azHeadID {
				t.Fatalf("%s: azure-corp head %d %s after refused input, was %d %s", m.name, h, id, azHead, azHeadID)
			}
			mustVerify(t, online(m), cred2, "azure-corp", corpData, "write", "deny", "action-not-allowed")
		}
		r := mustCLI(t, "federate", "--home", azure.home, "--accept", "aws-prod",
			"--subjects", "arn:aws:iam::111122223333:role/etl-*", "--resources", "blob://corp-data/archive/*", "--actions", "list", "--until", "24h")
		newRule := match1(t, reRule, r)
		sameVersion(t, agreeTimeout, v+1, all...)
		if h, id := head(t, gcp, "azure-corp"); h != azHead+1 || id.String() != newRule {
			t.Fatalf("azure-corp head %d %s, want %d %s (the legitimate rule at the position the forgery claimed)", h, id, azHead+1, newRule)
		}

		t.Run("missing-flag", func(t *testing.T) {
			r := cli(t, "verify", "--api", azure.api, "--credential", cred2, "--at", "azure-corp", "--resource", corpData)
			if r.code != 2 {
				t.Fatalf("want exit 2: %v", r)
			}
		})
	})

	step("8-usage-and-key-files", func(t *testing.T) {
		if r := cli(t, "verify"); r.code != 2 {
			t.Fatalf("verify with no flags: want exit 2: %v", r)
		}
		keys := []string{"root.key", "node.key", "token"}
		before := map[string][]byte{}
		for _, k := range keys {
			before[k] = readFile(t, filepath.Join(azure.home, k))
		}
		r := cli(t, "init", "--home", azure.home, "--name", "azure-corp", "--kind", "azure")
		if r.code == 0 {
			t.Fatalf("init into an existing home succeeded: %v", r)
		}
		t.Logf("init into an existing home: exit %d: %s", r.code, strings.TrimSpace(r.stderr))
		for _, k := range keys {
			if !bytes.Equal(readFile(t, filepath.Join(azure.home, k)), before[k]) {
				t.Fatalf("init into an existing home changed %s", k)
			}
		}
		for _, m := range append(append([]*member{}, all...), rogue) {
			for _, k := range keys {
				fi, err := os.Stat(filepath.Join(m.home, k))
				if err != nil {
					t.Fatal(err)
				}
				if fi.Mode().Perm() != 0o600 {
					t.Errorf("%s/%s has mode %v, want 0600", m.name, k, fi.Mode().Perm())
				}
			}
		}
	})

	step("9-stop-all", func(t *testing.T) {
		var wg sync.WaitGroup
		errs := make([]error, len(all))
		for i, m := range all {
			wg.Add(1)
			go func() { defer wg.Done(); errs[i] = m.p.stop() }()
		}
		wg.Wait()
		for i, m := range all {
			if errs[i] != nil {
				t.Errorf("%s did not stop cleanly on SIGTERM: %v", m.name, errs[i])
			}
			if !strings.Contains(tail(m.log, 200), "stopping") {
				t.Errorf("%s: no \"stopping\" line in its log", m.name)
			}
		}
	})

	step("10-offline-bundle-reproduces-online", func(t *testing.T) {
		for _, m := range all {
			if m.p.running() {
				t.Fatalf("%s is still running", m.name)
			}
		}
		for _, tc := range []struct {
			name   string
			cred   string
			online decision
		}{
			{"etl2-allow", cred2, onlineEtl2},
			{"revoked", cred, onlineRevoked},
			{"admin-subject", admin, onlineAdmin},
		} {
			t.Run(tc.name, func(t *testing.T) {
				d := mustVerify(t, offline(bundle1), tc.cred, "azure-corp", corpData, "read", tc.online.Decision, tc.online.Reason)
				if strings.Join(d.Chain, ",") != strings.Join(tc.online.Chain, ",") {
					t.Fatalf("offline chain %v, online chain %v", d.Chain, tc.online.Chain)
				}
				if d.GraphVersion != bundleVersion {
					t.Fatalf("offline graph_version %d, bundle version %d", d.GraphVersion, bundleVersion)
				}
				t.Logf("offline %s (%s), graph version %d, age %d ms", d.Decision, d.Reason, d.GraphVersion, d.GraphAgeMS)
			})
		}
		// The rule federated after the export is not in the bundle.
		mustVerify(t, offline(bundle1), analyst, analystTarget, analytics, "query", "deny", "no-rule")
	})
}
