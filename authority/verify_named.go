package authority

import "fmt"

// VerifyNamed is Verify with the target authority named by a person: its
// name or its ID, resolved in v (see ResolveAuthority); req.Target is
// ignored. When the target does not resolve, the decision is a deny: about
// the credential if the credential itself is at fault (malformed, bad
// signature, unknown issuer), else unknown-authority naming the target.
func VerifyNamed(v View, req Request, target string, opts ...Option) Decision {
	tid, err := ResolveAuthority(v, target)
	if err == nil {
		req.Target = tid
		return Verify(v, req, opts...)
	}
	req.Target = ID{}
	d := Verify(v, req, opts...)
	switch d.Reason {
	case ReasonMalformed, ReasonBadSignature:
		return d
	case ReasonUnknownAuthority:
		if _, ok := v.Authority(d.Issuer); !ok {
			return d // the credential's issuer is unknown: say so, not the target
		}
	}
	d.Allow, d.Outcome, d.Reason = false, "deny", ReasonUnknownAuthority
	d.Message = fmt.Sprintf("target %q: %v", target, err)
	return d
}
