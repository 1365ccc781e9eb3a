package node

import (
	"crypto/subtle"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/fednode/fednode/authority"
)

// API routes, versioned under /v1 (a public interface):
//
//	POST /v1/declarations        submit a signed declaration (body: the COSE envelope, application/cbor)   token
//	POST /v1/verify              decide a request (JSON VerifyRequest) -> VerifyResponse (receipt.go)       open
//	GET  /v1/status              node, peers, Raft and graph status (?consistency=)                          open
//	GET  /v1/graph               the agreed graph: authorities, rules, revocations (?consistency=)           open
//	GET  /v1/authorities/{ref}   one authority (name or id) and its chain head (?consistency=)               open
//	GET  /v1/declarations/{id}   one agreed declaration's envelope (?consistency=)                           open
//	GET  /v1/admissions          pending admission requests of non-members (consortium.go)                   open
//	GET  /v1/bundle              a signed offline bundle (?max_age=DUR&cosign=A,B&base=VERSION)              open
//	GET  /v1/audit/checkpoint    the signed checkpoint of this replica's transparency log                    open
//	GET  /v1/audit/prove/{id}    inclusion proof of an agreed declaration (?size=N, default current)         open
//	GET  /v1/audit/consistency   consistency proof (?old=M&new=N, new defaults to current)                    open
//	GET  /v1/audit/export        the whole log as JSON lines, then its signed checkpoint (audit.go)          open
//	GET  /metrics                Prometheus metrics                                                          open
//
// The four reads marked ?consistency= take consistency=local (the default:
// this replica as it is) or consistency=linearizable (through the leader's
// read index; 503 without quorum), and state what they read (read.go:
// ReadState, in the JSON and as Fednode-* headers).
//
// Endpoints that change state need "Authorization: Bearer TOKEN" with the
// token from the home directory. The listener is loopback only.

// maxVerifyBody bounds a verify request: a credential plus a few strings.
const maxVerifyBody = 4 * authority.MaxDeclarationSize

// VerifyRequest is the JSON body of POST /v1/verify.
type VerifyRequest struct {
	// Credential is the credential envelope, base64 (standard encoding).
	Credential string `json:"credential"`
	Target     string `json:"target"` // authority name or id
	Resource   string `json:"resource"`
	Action     string `json:"action"`
	// At is the RFC3339 time to judge at; empty: now.
	At string `json:"at,omitempty"`
	// Receipt asks for a sealed receipt of the decision (receipt.go).
	Receipt bool `json:"receipt,omitempty"`
	// JWT is an external credential: a compact JWS from an OIDC issuer an
	// authority declared. Exactly one of Credential, JWT and X509 is given.
	JWT string `json:"jwt,omitempty"`
	// X509 is an external credential: a certificate chain, leaf first, each
	// certificate's DER in base64 (standard encoding).
	X509 []string `json:"x509,omitempty"`
}

// VerifyResponse is the JSON of POST /v1/verify: the decision, and its
// sealed receipt (base64, standard encoding) when the request asked for one.
type VerifyResponse struct {
	authority.Decision
	Receipt []byte `json:"receipt,omitempty"`
}

// apiError is the JSON body of every error response.
type apiError struct {
	Error string `json:"error"`
}

func (n *Node) startAPI() error {
	addr := n.cfg.API
	if addr == "" {
		addr = n.home.Config.API
	}
	if addr == "" {
		addr = "127.0.0.1:0"
	}
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("node: API address %q: %w", addr, err)
	}
	if ip := net.ParseIP(host); host != "localhost" && (ip == nil || !ip.IsLoopback()) {
		return fmt.Errorf("node: API address %q: the API serves verify and status without a token, so it listens on loopback only (use 127.0.0.1:PORT)", addr)
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("node: API listen on %s: %w", addr, err)
	}
	n.apiLn = ln
	n.met.watchVersion(func() float64 { return float64(n.store.Version()) })
	mux := http.NewServeMux()
	mux.HandleFunc("POST /v1/declarations", n.auth(n.handleSubmit))
	mux.HandleFunc("POST /v1/keys/reload", n.auth(n.handleReloadKeys))
	mux.HandleFunc("POST /v1/verify", n.handleVerify)
	mux.HandleFunc("GET /v1/status", n.handleStatus)
	mux.HandleFunc("GET /v1/admissions", n.handleAdmissions)
	mux.HandleFunc("GET /v1/graph", n.handleGraph)
	mux.HandleFunc("GET /v1/authorities/{ref}", n.handleAuthority)
	mux.HandleFunc("GET /v1/declarations/{id}", n.handleDeclaration)
	mux.HandleFunc("GET /v1/bundle", n.handleBundle)
	mux.HandleFunc("GET /v1/audit/checkpoint", n.handleAuditCheckpoint)
	mux.HandleFunc("GET /v1/audit/prove/{id}", n.handleAuditProve)
	mux.HandleFunc("GET /v1/audit/consistency", n.handleAuditConsistency)
	mux.HandleFunc("GET /v1/audit/export", n.handleAuditExport)
	mux.Handle("GET /metrics", promhttp.HandlerFor(n.met.reg, promhttp.HandlerOpts{}))
	n.apiSrv = &http.Server{
		Handler:           mux,
		ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout:       30 * time.Second,
		WriteTimeout:      120 * time.Second,
		ErrorLog:          nil,
	}
	if err := n.home.RecordAPIAddr(ln.Addr().String()); err != nil {
		return fmt.Errorf("node: record API address: %w", err)
	}
	n.wg.Go(func() {
		if err := n.apiSrv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			n.log.Error("API server stopped", "err", err)
		}
	})
	return nil
}

func (n *Node) auth(h http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		got, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
		if !ok || subtle.ConstantTimeCompare([]byte(got), []byte(n.home.Token)) != 1 {
			writeJSON(w, http.StatusUnauthorized, apiError{"this endpoint changes state: send Authorization: Bearer TOKEN with the token from the node's home directory"})
			return
		}
		h(w, r)
	}
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	_ = enc.Encode(v)
}

func (n *Node) handleSubmit(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(io.LimitReader(r.Body, authority.MaxDeclarationSize+1))
	if err != nil {
		writeJSON(w, http.StatusBadRequest, apiError{"reading the request body: " + err.Error()})
		return
	}
	res, err := n.Submit(r.Context(), body)
	switch {
	case err == nil && res.Status == "duplicate":
		writeJSON(w, http.StatusOK, res)
	case err == nil:
		writeJSON(w, http.StatusAccepted, res)
	case errors.Is(err, ErrInvalid):
		writeJSON(w, http.StatusBadRequest, apiError{"the body is not a valid signed declaration: " + err.Error()})
	case errors.Is(err, ErrUnknownIssuer):
		writeJSON(w, http.StatusUnprocessableEntity, apiError{err.Error()})
	case errors.Is(err, ErrConflict):
		writeJSON(w, http.StatusConflict, apiError{err.Error()})
	case errors.Is(err, ErrTooManyApplicants):
		writeJSON(w, http.StatusTooManyRequests, apiError{err.Error()})
	case errors.Is(err, ErrRefused):
		writeJSON(w, http.StatusForbidden, apiError{err.Error()})
	default:
		writeJSON(w, http.StatusInternalServerError, apiError{err.Error()})
	}
}

func (n *Node) handleVerify(w http.ResponseWriter, r *http.Request) {
	var req VerifyRequest
	dec := json.NewDecoder(io.LimitReader(r.Body, maxVerifyBody))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&req); err != nil {
		writeJSON(w, http.StatusBadRequest, apiError{"verify: the body must be a JSON object {credential, target, resource, action, at, receipt}: " + err.Error()})
		return
	}
	if dec.More() {
		writeJSON(w, http.StatusBadRequest, apiError{"verify: the body must be exactly one JSON object; found more after it"})
		return
	}
	cred, err := base64.StdEncoding.DecodeString(req.Credential)
	if err != nil {
		writeJSON(w, http.StatusBadRequest, apiError{"verify: credential must be base64 (standard encoding): " + err.Error()})
		return
	}
	if req.Target == "" || req.Resource == "" || req.Action == "" {
		writeJSON(w, http.StatusBadRequest, apiError{"verify: target, resource and action are required"})
		return
	}
	at := n.now()
	if req.At != "" {
		if at, err = time.Parse(time.RFC3339, req.At); err != nil {
			writeJSON(w, http.StatusBadRequest, apiError{"verify: at must be an RFC3339 time: " + err.Error()})
			return
		}
	}
	if req.JWT != "" || len(req.X509) > 0 {
		if req.Receipt {
			writeJSON(w, http.StatusBadRequest, apiError{"verify: receipts are for fednode credentials; an external credential has none yet"})
			return
		}
		ar := authority.Request{Credential: cred, JWT: req.JWT, Resource: req.Resource, Action: req.Action}
		for i, c := range req.X509 {
			der, err := base64.StdEncoding.DecodeString(c)
			if err != nil {
				writeJSON(w, http.StatusBadRequest, apiError{fmt.Sprintf("verify: x509[%d] must be base64 DER: %v", i, err)})
				return
			}
			ar.X509 = append(ar.X509, der)
		}
		writeJSON(w, http.StatusOK, n.VerifyRequest(ar, req.Target, at))
		return
	}
	if !req.Receipt {
		writeJSON(w, http.StatusOK, n.Verify(cred, req.Target, req.Resource, req.Action, at))
		return
	}
	d, receipt, err := n.VerifyWithReceipt(cred, req.Target, req.Resource, req.Action, at)
	switch {
	case err == nil:
		writeJSON(w, http.StatusOK, VerifyResponse{Decision: d, Receipt: receipt})
	case errors.Is(err, ErrEmptyLog):
		writeJSON(w, http.StatusServiceUnavailable, apiError{"verify: no receipt: " + err.Error()})
	case errors.Is(err, ErrReceiptTooLarge):
		writeJSON(w, http.StatusRequestEntityTooLarge, apiError{"verify: no receipt: " + err.Error()})
	default:
		writeJSON(w, http.StatusInternalServerError, apiError{"verify: no receipt: " + err.Error()})
	}
}

// Status is the JSON of GET /v1/status.
type Status struct {
	Authority   AuthorityRef `json:"authority"`
	PeerID      string       `json:"peer_id"`
	ListenAddrs []string     `json:"listen_addrs"`
	API         string       `json:"api"`
	Peers       []string     `json:"peers"`
	Topics      []string     `json:"topics"`
	Raft        RaftStatus   `json:"raft"`
	Graph       GraphStatus  `json:"graph"`
	Pending     int          `json:"pending"`
	// Checkpoint is the replica's log checkpoint with its witnesses.
	Checkpoint *CheckpointStatus `json:"checkpoint,omitempty"`
	// SplitView holds evidence of two roots for one log size, if seen: the
	// node then refuses to export bundles.
	SplitView *SplitViewStatus `json:"split_view,omitempty"`
	// Equivocations is the evidence of equivocation this node holds.
	Equivocations []EquivocationStatus `json:"equivocations"`
	// Consortium is the membership in this replica (consortium.go); absent
	// before any charter.
	Consortium *ConsortiumStatus `json:"consortium,omitempty"`
}

// CheckpointStatus summarises the replica's checkpoint.
type CheckpointStatus struct {
	Size    uint64   `json:"size"`
	Root    HexBytes `json:"root"`
	Signers []string `json:"signers"`
}

// SplitViewStatus is the evidence of a split view: two signed notes.
type SplitViewStatus struct {
	Ours   string `json:"ours"`
	Theirs string `json:"theirs"`
}

// AuthorityRef names an authority.
type AuthorityRef struct {
	ID   authority.ID `json:"id"`
	Name string       `json:"name"`
	Kind string       `json:"kind,omitempty"`
}

// RaftStatus is the node's view of consensus.
type RaftStatus struct {
	State        string   `json:"state"`
	Leader       string   `json:"leader"`
	Term         uint64   `json:"term"`
	LastIndex    uint64   `json:"last_index"`
	CommitIndex  uint64   `json:"commit_index"`
	AppliedIndex uint64   `json:"applied_index"`
	Voters       []string `json:"voters"`
}

// GraphStatus is the replica's graph version and age.
type GraphStatus struct {
	Version     uint64 `json:"version"`
	AgeMS       int64  `json:"age_ms"`
	Authorities int    `json:"authorities"`
}

// Status reports the node's state.
func (n *Node) Status() Status {
	st := n.raft.Stats()
	g := GraphStatus{Version: n.store.Version()}
	if age := time.Since(n.graphAsOf()); age > 0 {
		g.AgeMS = age.Milliseconds()
	}
	n.store.View(func(v authority.View) {
		g.Authorities = len(v.Authorities())
	})
	voters := st.Voters
	if voters == nil {
		voters = []string{}
	}
	var cs *CheckpointStatus
	if cp, signers, err := n.WitnessedCheckpoint(); err == nil {
		cs = &CheckpointStatus{Size: cp.Size, Root: cp.Root, Signers: signers}
	}
	var sv *SplitViewStatus
	if ev := n.SplitView(); ev != nil {
		sv = &SplitViewStatus{Ours: string(ev.A), Theirs: string(ev.B)}
	}
	return Status{
		Consortium:  n.ConsortiumStatus(),
		Checkpoint:  cs,
		SplitView:   sv,
		Authority:   AuthorityRef{ID: n.home.Authority, Name: n.home.Config.Name, Kind: n.home.Config.Kind},
		PeerID:      n.host.PeerID(),
		ListenAddrs: n.host.Addrs(),
		API:         n.APIAddr(),
		Peers:       nonNil(n.host.ConnectedPeers()),
		Topics:      n.host.Topics(),
		Raft: RaftStatus{State: st.State, Leader: st.Leader, Term: st.Term, LastIndex: st.LastIndex,
			CommitIndex: st.CommitIndex, AppliedIndex: st.AppliedIndex, Voters: voters},
		Graph:         g,
		Pending:       n.pool.size(),
		Equivocations: n.Equivocations(),
	}
}

func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}

func (n *Node) handleStatus(w http.ResponseWriter, r *http.Request) {
	rs, ok := n.readFor(w, r, nil)
	if !ok {
		return
	}
	writeJSON(w, http.StatusOK, statusRead{Status: n.Status(), ReadState: rs})
}

// GraphJSON is the JSON of GET /v1/graph.
type GraphJSON struct {
	Version     uint64          `json:"version"`
	Authorities []AuthorityJSON `json:"authorities"`
}

// AuthorityJSON is one authority with its rules and revocations.
type AuthorityJSON struct {
	AuthorityStatus
	Rules []RuleJSON `json:"rules"`
}

// RuleJSON is one federation rule.
type RuleJSON struct {
	ID        authority.ID `json:"id"`
	Seq       uint64       `json:"seq"`
	Source    authority.ID `json:"source"`
	Subjects  string       `json:"subjects"`
	Resources string       `json:"resources"`
	Actions   []string     `json:"actions"`
	NotBefore string       `json:"not_before,omitempty"`
	NotAfter  string       `json:"not_after,omitempty"`
	Revoked   bool         `json:"revoked,omitempty"`
}

// Graph describes the agreed graph (a local read).
func (n *Node) Graph() GraphJSON {
	var out GraphJSON
	n.store.View(func(v authority.View) { out = graphOf(v) })
	return out
}

func graphOf(v authority.View) GraphJSON {
	out := GraphJSON{Version: v.Version(), Authorities: []AuthorityJSON{}}
	for _, a := range v.Authorities() {
		aj := AuthorityJSON{AuthorityStatus: AuthorityStatus{ID: a.ID, Name: a.Name, Kind: a.Kind, Head: a.Head, HeadID: a.HeadID}, Rules: []RuleJSON{}}
		for _, ri := range v.RulesFor(a.ID) {
			_, revoked := v.RevokedBy(ri.ID, a.ID)
			aj.Rules = append(aj.Rules, RuleJSON{ID: ri.ID, Seq: ri.Seq, Source: ri.Rule.Source, Subjects: ri.Rule.Subjects,
				Resources: ri.Rule.Resources, Actions: ri.Rule.Actions, NotBefore: unixOrEmpty(ri.Rule.NotBefore),
				NotAfter: unixOrEmpty(ri.Rule.NotAfter), Revoked: revoked})
		}
		out.Authorities = append(out.Authorities, aj)
	}
	return out
}

func unixOrEmpty(s int64) string {
	if s == 0 {
		return ""
	}
	return time.Unix(s, 0).UTC().Format(time.RFC3339)
}

func (n *Node) handleGraph(w http.ResponseWriter, r *http.Request) {
	var out GraphJSON
	rs, ok := n.readFor(w, r, func(v authority.View) { out = graphOf(v) })
	if !ok {
		return
	}
	writeJSON(w, http.StatusOK, graphRead{GraphJSON: out, ReadState: rs})
}

func (n *Node) handleAuthority(w http.ResponseWriter, r *http.Request) {
	var st AuthorityStatus
	var err error
	rs, ok := n.readFor(w, r, func(v authority.View) { st, err = n.headIn(v, r.PathValue("ref")) })
	if !ok {
		return
	}
	if err != nil {
		writeJSON(w, http.StatusNotFound, apiError{err.Error()})
		return
	}
	writeJSON(w, http.StatusOK, authorityRead{AuthorityStatus: n.advancePending(st), ReadState: rs})
}

func (n *Node) handleDeclaration(w http.ResponseWriter, r *http.Request) {
	id, err := authority.ParseID(r.PathValue("id"))
	if err != nil {
		writeJSON(w, http.StatusBadRequest, apiError{err.Error()})
		return
	}
	// The graph only grows: a declaration absent after the read began was
	// not agreed when it began.
	if _, ok := n.readFor(w, r, nil); !ok {
		return
	}
	env, err := n.store.Declaration(id)
	if err != nil {
		writeJSON(w, http.StatusNotFound, apiError{err.Error()})
		return
	}
	w.Header().Set("Content-Type", "application/cbor")
	_, _ = w.Write(env)
}

// handleBundle exports a bundle. Query: max_age (a Go duration), cosign
// (comma-separated authority names or IDs), base (a graph version: a delta).
func (n *Node) handleBundle(w http.ResponseWriter, r *http.Request) {
	var o ExportOptions
	q := r.URL.Query()
	if v := q.Get("max_age"); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil {
			writeJSON(w, http.StatusBadRequest, apiError{"bundle: max_age: " + err.Error()})
			return
		}
		o.MaxAge = d
	}
	if v := q.Get("cosign"); v != "" {
		o.Cosign = strings.Split(v, ",")
	}
	if v := q.Get("base"); v != "" {
		b, err := strconv.ParseUint(v, 10, 64)
		if err != nil {
			writeJSON(w, http.StatusBadRequest, apiError{"bundle: base: want a graph version: " + err.Error()})
			return
		}
		o.BaseVersion = b
	}
	b, err := n.ExportBundle(r.Context(), o)
	if err != nil {
		writeJSON(w, http.StatusServiceUnavailable, apiError{err.Error()})
		return
	}
	w.Header().Set("Content-Type", "application/cbor")
	_, _ = w.Write(b)
}
