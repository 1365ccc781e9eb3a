package bundle

import (
	"fmt"
	"time"

	"github.com/fednode/fednode/authority"
)

// VerifyOptions are the site's choices for one offline decision.
type VerifyOptions struct {
	// AllowStale is how long past its NotAfter deadline the bundle may still
	// be used, by the operator's explicit choice; 0 fails closed at the
	// deadline.
	AllowStale time.Duration
	// LastSeen is the highest graph version this site has already seen of
	// the bundle's log (Site.LastSeen); 0 means none. A bundle below it is a
	// rollback.
	LastSeen uint64
}

// Verify decides req offline, judged at time at, against the bundle's graph.
// Before the request is judged it denies a rollback (GraphVersion below
// o.LastSeen: reason rollback) and a stale bundle (at is at or past NotAfter
// by more than o.AllowStale: reason stale-bundle, saying how stale). A stale
// bundle within AllowStale is decided normally, and the message says that it
// was stale and allowed by the operator.
//
// The decision's GraphVersion is the bundle's and its GraphAgeMS is how long
// after the export at is (zero if at is before it).
func (b *Bundle) Verify(req authority.Request, at time.Time, o VerifyOptions) authority.Decision {
	return b.decide(req, at, o, func(opts ...authority.Option) authority.Decision {
		return authority.Verify(b.Graph, req, opts...)
	})
}

// Decide is Verify with the target authority named by a person (a name or an
// ID, resolved in the bundle's graph; see authority.VerifyNamed).
func (b *Bundle) Decide(req authority.Request, target string, at time.Time, o VerifyOptions) authority.Decision {
	return b.decide(req, at, o, func(opts ...authority.Option) authority.Decision {
		return authority.VerifyNamed(b.Graph, req, target, opts...)
	})
}

// decide checks the bundle's freshness and the site's last-seen version,
// then lets judge decide the request.
func (b *Bundle) decide(req authority.Request, at time.Time, o VerifyOptions, judge func(...authority.Option) authority.Decision) authority.Decision {
	if o.LastSeen > 0 && b.GraphVersion < o.LastSeen {
		return b.deny(req, at, authority.ReasonRollback, fmt.Sprintf(
			"the bundle is at graph version %d of %s, but this site has already seen version %d: refusing an older bundle (rollback); use a bundle at version %d or later",
			b.GraphVersion, b.Origin, o.LastSeen, o.LastSeen))
	}
	notAfter := time.UnixMilli(b.NotAfter)
	late := at.Sub(notAfter)
	stale := !at.Before(notAfter)
	if stale && (o.AllowStale <= 0 || late > o.AllowStale) {
		msg := fmt.Sprintf("the bundle expired at %s, %s before the decision time %s; get a newer bundle",
			fmtTime(notAfter), late, fmtTime(at))
		if o.AllowStale > 0 {
			msg += fmt.Sprintf(" (stale bundles are allowed up to %s past their deadline)", o.AllowStale)
		}
		return b.deny(req, at, authority.ReasonStaleBundle, msg)
	}
	d := judge(authority.WithTime(at), authority.WithGraphAsOf(b.exportedAt()))
	if stale {
		d.Message += fmt.Sprintf(" [stale bundle: expired at %s, %s before the decision; allowed by the operator up to %s]",
			fmtTime(notAfter), late, o.AllowStale)
	}
	return d
}

// deny is a decision refused before the request is judged: it echoes the
// request as authority.Verify does, with an empty chain.
func (b *Bundle) deny(req authority.Request, at time.Time, r authority.Reason, msg string) authority.Decision {
	return authority.Decision{
		Outcome:      "deny",
		Reason:       r,
		Message:      msg,
		Chain:        []authority.ID{},
		GraphVersion: b.GraphVersion,
		GraphAgeMS:   b.Age(at).Milliseconds(),
		Target:       req.Target,
		Resource:     req.Resource,
		Action:       req.Action,
		At:           fmtTime(at),
	}
}

// exportedAt is ExportedAt as a time.
func (b *Bundle) exportedAt() time.Time { return time.UnixMilli(b.ExportedAt) }

// Age returns how old the bundle's graph is at time at: the time since the
// export, or zero if at is before it (a clock behind the exporter's), as the
// decision's GraphAgeMS reports it.
func (b *Bundle) Age(at time.Time) time.Duration {
	return max(at.Sub(b.exportedAt()), 0)
}

// Expires is the bundle's NotAfter deadline as a time.
func (b *Bundle) Expires() time.Time { return time.UnixMilli(b.NotAfter) }

func fmtTime(t time.Time) string { return t.UTC().Format(time.RFC3339) }
