package node

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/fednode/fednode/authority"
)

// Client talks to a node's HTTP API. The CLI and the testnet use it.
type Client struct {
	// Addr is the API's host:port.
	Addr string
	// Token authorizes state-changing calls; empty for open endpoints.
	Token string
	HTTP  *http.Client
}

// NewClient returns a client for the API at addr.
func NewClient(addr, token string) *Client {
	return &Client{Addr: addr, Token: token, HTTP: &http.Client{Timeout: 30 * time.Second}}
}

// ClientForHome returns a client for the running node of a home directory,
// with its token.
func ClientForHome(h *Home) (*Client, error) {
	addr, err := h.APIAddr()
	if err != nil {
		return nil, err
	}
	return NewClient(addr, h.Token), nil
}

// APIError is an error response from the API.
type APIError struct {
	Status  int
	Message string
}

func (e *APIError) Error() string {
	return fmt.Sprintf("node API: %s (HTTP %d)", e.Message, e.Status)
}

// Unwrap maps the status back to the node's sentinel errors, so callers
// branch the same way in process and over HTTP.
func (e *APIError) Unwrap() error {
	switch e.Status {
	case http.StatusBadRequest:
		return ErrInvalid
	case http.StatusUnprocessableEntity:
		return ErrUnknownIssuer
	case http.StatusConflict:
		return ErrConflict
	case http.StatusForbidden:
		return ErrRefused
	case http.StatusTooManyRequests:
		return ErrTooManyApplicants
	}
	return nil
}

func (c *Client) do(ctx context.Context, method, path string, body io.Reader, contentType string, out any) error {
	req, err := http.NewRequestWithContext(ctx, method, "http://"+c.Addr+path, body)
	if err != nil {
		return fmt.Errorf("node: client: %w", err)
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	if c.Token != "" {
		req.Header.Set("Authorization", "Bearer "+c.Token)
	}
	resp, err := c.HTTP.Do(req)
	if err != nil {
		return fmt.Errorf("node: cannot reach the node API at %s (is the node running?): %w", c.Addr, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 1<<30))
	if err != nil {
		return fmt.Errorf("node: client: read response: %w", err)
	}
	if resp.StatusCode >= 300 {
		var ae apiError
		if json.Unmarshal(b, &ae) == nil && ae.Error != "" {
			return &APIError{Status: resp.StatusCode, Message: ae.Error}
		}
		return &APIError{Status: resp.StatusCode, Message: string(bytes.TrimSpace(b))}
	}
	switch o := out.(type) {
	case nil:
		return nil
	case *[]byte:
		*o = b
		return nil
	default:
		if err := json.Unmarshal(b, out); err != nil {
			return fmt.Errorf("node: client: decode response of %s: %w", path, err)
		}
		return nil
	}
}

// Submit posts a signed declaration.
func (c *Client) Submit(ctx context.Context, env []byte) (SubmitResult, error) {
	var r SubmitResult
	err := c.do(ctx, http.MethodPost, "/v1/declarations", bytes.NewReader(env), "application/cbor", &r)
	return r, err
}

// VerifyExternal asks the node to decide an external credential: a JWT, or
// an X.509 chain (DER, leaf first). at zero means the node's now.
func (c *Client) VerifyExternal(ctx context.Context, jwt string, chain [][]byte, target, resource, action string, at time.Time) (authority.Decision, error) {
	req := VerifyRequest{JWT: jwt, Target: target, Resource: resource, Action: action}
	for _, der := range chain {
		req.X509 = append(req.X509, base64.StdEncoding.EncodeToString(der))
	}
	if !at.IsZero() {
		req.At = at.UTC().Format(time.RFC3339)
	}
	b, _ := json.Marshal(req)
	var d authority.Decision
	err := c.do(ctx, http.MethodPost, "/v1/verify", bytes.NewReader(b), "application/json", &d)
	d.Allow = d.Outcome == "allow"
	return d, err
}

// Verify asks the node for a decision. at zero means the node's now.
func (c *Client) Verify(ctx context.Context, cred []byte, target, resource, action string, at time.Time) (authority.Decision, error) {
	r, err := c.verify(ctx, cred, target, resource, action, at, false)
	return r.Decision, err
}

// VerifyWithReceipt asks the node for a decision and its sealed receipt
// (node.Receipt). The client does not check the receipt: ParseReceipt and
// OpenReceipt do, and `fednode audit check-receipt` checks it against the
// log.
func (c *Client) VerifyWithReceipt(ctx context.Context, cred []byte, target, resource, action string, at time.Time) (authority.Decision, []byte, error) {
	r, err := c.verify(ctx, cred, target, resource, action, at, true)
	if err == nil && len(r.Receipt) == 0 {
		err = fmt.Errorf("node: client: asked for a receipt, the node at %s sent none (does it predate receipts?)", c.Addr)
	}
	return r.Decision, r.Receipt, err
}

func (c *Client) verify(ctx context.Context, cred []byte, target, resource, action string, at time.Time, receipt bool) (VerifyResponse, error) {
	req := VerifyRequest{Credential: base64.StdEncoding.EncodeToString(cred), Target: target, Resource: resource, Action: action, Receipt: receipt}
	if !at.IsZero() {
		req.At = at.UTC().Format(time.RFC3339)
	}
	b, _ := json.Marshal(req)
	var r VerifyResponse
	err := c.do(ctx, http.MethodPost, "/v1/verify", bytes.NewReader(b), "application/json", &r)
	r.Allow = r.Outcome == "allow"
	return r, err
}

// Status fetches the node's status.
func (c *Client) Status(ctx context.Context) (Status, error) {
	var s Status
	err := c.do(ctx, http.MethodGet, "/v1/status", nil, "", &s)
	return s, err
}

// Graph fetches the agreed graph.
func (c *Client) Graph(ctx context.Context) (GraphJSON, error) {
	var g GraphJSON
	err := c.do(ctx, http.MethodGet, "/v1/graph", nil, "", &g)
	return g, err
}

// Head fetches one authority and its chain head (pending included).
func (c *Client) Head(ctx context.Context, ref string) (AuthorityStatus, error) {
	var a AuthorityStatus
	err := c.do(ctx, http.MethodGet, "/v1/authorities/"+url.PathEscape(ref), nil, "", &a)
	return a, err
}

// Declaration fetches an agreed declaration's envelope; an *APIError with
// status 404 means the node's replica does not hold it (yet).
func (c *Client) Declaration(ctx context.Context, id authority.ID) ([]byte, error) {
	var b []byte
	err := c.do(ctx, http.MethodGet, "/v1/declarations/"+id.String(), nil, "", &b)
	return b, err
}

// WaitAgreed polls until the node's replica holds id, or ctx ends.
func (c *Client) WaitAgreed(ctx context.Context, id authority.ID) error {
	for {
		_, err := c.Declaration(ctx, id)
		var ae *APIError
		if err == nil || !errors.As(err, &ae) || ae.Status != http.StatusNotFound {
			return err
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("node: declaration %s is not agreed yet: %w", id.Short(), ctx.Err())
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// Bundle fetches a signed bundle of the agreed graph.
func (c *Client) Bundle(ctx context.Context, o ExportOptions) ([]byte, error) {
	q := url.Values{}
	if o.MaxAge != 0 {
		q.Set("max_age", o.MaxAge.String())
	}
	if len(o.Cosign) > 0 {
		q.Set("cosign", strings.Join(o.Cosign, ","))
	}
	if o.BaseVersion != 0 {
		q.Set("base", strconv.FormatUint(o.BaseVersion, 10))
	}
	path := "/v1/bundle"
	if len(q) > 0 {
		path += "?" + q.Encode()
	}
	var b []byte
	err := c.do(ctx, http.MethodGet, path, nil, "", &b)
	return b, err
}

// Declarer is where SignNext finds a chain head and submits: a Client over
// HTTP, or a Node in process.
type Declarer interface {
	Head(ctx context.Context, ref string) (AuthorityStatus, error)
	Submit(ctx context.Context, env []byte) (SubmitResult, error)
}

// SignNext signs a declaration of the home's authority at its next chain
// position and submits it, under the home's signing lock, so that two
// commands never sign one position twice. build fills in the body.
func SignNext(ctx context.Context, h *Home, to Declarer, now time.Time, build func(d *authority.Declaration)) (*authority.Signed, error) {
	return SignNextWith(ctx, h, to, now, build, SignOptions{})
}

// SignOptions change how SignNextWith signs.
type SignOptions struct {
	// Keys, when set, sign instead of the home's root threshold: an
	// operational key, alone, or a root set's threshold.
	Keys []*authority.PrivateKey
	// Before, when set, runs on the signed envelope before it is
	// submitted; an error stops the submission. `fednode rotate` records
	// the rotation there, so that its keys are never thrown away.
	Before func(sd *authority.Signed) error
}

// SignNextWith is SignNext with options.
func SignNextWith(ctx context.Context, h *Home, to Declarer, now time.Time, build func(d *authority.Declaration), o SignOptions) (*authority.Signed, error) {
	unlock, err := h.LockSigning()
	if err != nil {
		return nil, err
	}
	defer unlock()
	var lastErr error
	for attempt := 0; attempt < 5; attempt++ {
		head, err := to.Head(ctx, h.Authority.String())
		if err != nil {
			return nil, fmt.Errorf("node: find %s's chain head: %w", h.Config.Name, err)
		}
		d := authority.Declaration{Authority: h.Authority, Seq: head.Head + 1, Prev: head.HeadID, IssuedAt: now.Unix()}
		build(&d)
		var sd *authority.Signed
		if len(o.Keys) > 0 {
			sd, err = authority.SignMulti(d, o.Keys...)
		} else {
			sd, err = h.Sign(d)
		}
		if err != nil {
			return nil, err
		}
		if o.Before != nil {
			if err := o.Before(sd); err != nil {
				return nil, err
			}
		}
		if _, err := to.Submit(ctx, sd.Raw); err != nil {
			if errors.Is(err, ErrConflict) {
				lastErr = err
				time.Sleep(200 * time.Millisecond)
				continue
			}
			return nil, err
		}
		return sd, nil
	}
	return nil, fmt.Errorf("node: the chain head kept moving while signing: %w", lastErr)
}

// ReloadKeys asks the node to sign with the home's root keys as they are on
// disk now (after `fednode rotate` installed new ones).
func (c *Client) ReloadKeys(ctx context.Context) error {
	return c.do(ctx, http.MethodPost, "/v1/keys/reload", nil, "", nil)
}

// AuditCheckpoint fetches the node's signed checkpoint of its log. The
// caller checks the note's signature (tlog.OpenCheckpoint): the client only
// decodes.
func (c *Client) AuditCheckpoint(ctx context.Context) (CheckpointJSON, error) {
	var cp CheckpointJSON
	err := c.do(ctx, http.MethodGet, "/v1/audit/checkpoint", nil, "", &cp)
	return cp, err
}

// AuditProve fetches the inclusion proof of id in the log of size leaves
// (0: the node's current size). The caller verifies it (tlog.VerifyInclusion).
func (c *Client) AuditProve(ctx context.Context, id authority.ID, size uint64) (InclusionJSON, error) {
	path := "/v1/audit/prove/" + id.String()
	if size > 0 {
		path += "?size=" + strconv.FormatUint(size, 10)
	}
	var p InclusionJSON
	err := c.do(ctx, http.MethodGet, path, nil, "", &p)
	return p, err
}

// AuditConsistency fetches the consistency proof from the log at oldSize to
// the log at newSize. The caller verifies it (tlog.VerifyConsistency).
func (c *Client) AuditConsistency(ctx context.Context, oldSize, newSize uint64) (ConsistencyJSON, error) {
	q := url.Values{"old": {strconv.FormatUint(oldSize, 10)}, "new": {strconv.FormatUint(newSize, 10)}}
	var p ConsistencyJSON
	err := c.do(ctx, http.MethodGet, "/v1/audit/consistency?"+q.Encode(), nil, "", &p)
	return p, err
}

// AuditExport streams the node's whole log, as JSON lines, to w. Only ctx
// bounds it (a large log takes longer than the client's usual timeout). An
// error after some bytes were written leaves w with a prefix that lacks the
// checkpoint line.
func (c *Client) AuditExport(ctx context.Context, w io.Writer) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+c.Addr+"/v1/audit/export", nil)
	if err != nil {
		return fmt.Errorf("node: client: %w", err)
	}
	hc := http.Client{}
	if c.HTTP != nil {
		hc = *c.HTTP
	}
	hc.Timeout = 0
	resp, err := hc.Do(req)
	if err != nil {
		return fmt.Errorf("node: cannot reach the node API at %s (is the node running?): %w", c.Addr, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode >= 300 {
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
		var ae apiError
		if json.Unmarshal(b, &ae) == nil && ae.Error != "" {
			return &APIError{Status: resp.StatusCode, Message: ae.Error}
		}
		return &APIError{Status: resp.StatusCode, Message: string(bytes.TrimSpace(b))}
	}
	if _, err := io.Copy(w, resp.Body); err != nil {
		return fmt.Errorf("node: client: audit export: %w", err)
	}
	return nil
}
