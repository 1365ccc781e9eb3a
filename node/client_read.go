package node

import (
	"context"
	"errors"
	"net/http"
	"net/url"
)

// GraphRead fetches the agreed graph with consistency c and what the read
// saw. A linearizable read refused for want of quorum returns an error
// matching ErrNoQuorum (and *APIError with status 503).
func (c *Client) GraphRead(ctx context.Context, cons Consistency) (GraphJSON, ReadState, error) {
	var out graphRead
	err := c.do(ctx, http.MethodGet, "/v1/graph?consistency="+url.QueryEscape(string(cons)), nil, "", &out)
	return out.GraphJSON, out.ReadState, readErr(err)
}

// HeadRead fetches one authority's chain head with consistency c (pending
// declarations included, as Head) and what the read saw.
func (c *Client) HeadRead(ctx context.Context, ref string, cons Consistency) (AuthorityStatus, ReadState, error) {
	var out authorityRead
	err := c.do(ctx, http.MethodGet, "/v1/authorities/"+url.PathEscape(ref)+"?consistency="+url.QueryEscape(string(cons)), nil, "", &out)
	return out.AuthorityStatus, out.ReadState, readErr(err)
}

// noQuorumError is an API 503 on a read: ErrNoQuorum as well as the
// *APIError.
type noQuorumError struct{ *APIError }

func (e noQuorumError) Is(target error) bool { return target == ErrNoQuorum }

func (e noQuorumError) Unwrap() error { return e.APIError }

func readErr(err error) error {
	var ae *APIError
	if errors.As(err, &ae) && ae.Status == http.StatusServiceUnavailable {
		return noQuorumError{ae}
	}
	return err
}
