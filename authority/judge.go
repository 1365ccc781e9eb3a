package authority

import (
	"bytes"
	"errors"
	"fmt"
	"slices"
	"time"
)

// This file holds what Verify asks of key governance: who may sign a
// credential, and which rules an equivocation taints.

// judgeCredentialSigners decides whether cred's signatures make it a
// credential of issuer at time at, and returns the deny reason and message,
// or "" if they do. The rules, in order:
//
//   - Every signature must verify with the key its kid names (a root key of
//     any of issuer's root sets, or a delegated operational key) under that
//     key's own algorithm: else bad-signature.
//   - One operational key alone: its latest delegation must be unrevoked
//     (revoked), include credentials in its scope (bad-signature) and have
//     at in its window (not-yet-valid, expired).
//   - Root keys: at least the threshold of distinct keys of the current set
//     (threshold-not-met), with no retired key among them; or, failing that,
//     a threshold of one retired set, for a credential whose window closes
//     no later than the IssuedAt of the rotation that retired it (else
//     key-rotated; see Rotation for why the credential's own IssuedAt is
//     not believed).
//   - Then: an issuer marked equivocating has no trusted credentials
//     (equivocation).
//
// name is how messages call the credential ("the credential", or a link of a
// delegated chain), made only for a message. m, when not nil, remembers its verified signatures
// (cache.go).
func judgeCredentialSigners(v View, cred *Signed, issuer *AuthorityInfo, name func() string, at time.Time, m sigMemo) (Reason, string) {
	st := viewState(v, issuer)
	if len(cred.Signatures) == 1 {
		if o, ok := v.OperationalKey(issuer.ID, cred.KeyID); ok {
			if r, msg := judgeOpKey(v, cred, issuer, o, name, at, m); r != "" {
				return r, msg
			}
			return judgeEquivocation(issuer)
		}
	}
	cls, err := st.classify(cred, m)
	if err != nil {
		reason := ReasonBadSignature
		if errors.Is(err, ErrMalformed) {
			reason = ReasonMalformed
		}
		return reason, fmt.Sprintf("%s's signature does not verify against %s's declared keys: %v", name(), issuer.Name, err)
	}
	if cls.operational != nil {
		return ReasonBadSignature, fmt.Sprintf("%s is signed by operational key %x of %s together with other keys: an operational key signs alone", name(), cls.operational, issuer.Name)
	}
	if cls.retired == nil && len(cls.keys) >= st.roots.Threshold {
		return judgeEquivocation(issuer)
	}
	c := cred.Decl.Credential
	for i := len(st.past) - 1; i >= 0; i-- {
		rs := st.past[i]
		if !rs.covers(cls.keys) {
			continue
		}
		retiredAt := issuer.Roots[i+1].IssuedAt
		if c.NotAfter != 0 && c.NotAfter <= retiredAt {
			return judgeEquivocation(issuer)
		}
		return ReasonKeyRotated, fmt.Sprintf("%s is signed by root keys of %s that rotation %s retired, and its window (until %s) outlives that rotation (issued %s): only credentials whose window closes by then still verify",
			name(), issuer.Name, issuer.Roots[i+1].ID.Short(), fmtOpenEnd(c.NotAfter), fmtUnix(retiredAt))
	}
	if cls.retired != nil {
		return ReasonKeyRotated, fmt.Sprintf("%s is signed with root key %x of %s, which a rotation retired", name(), cls.retired, issuer.Name)
	}
	return ReasonThresholdNotMet, fmt.Sprintf("%s has %d valid signature(s) by distinct root keys of %s; its threshold is %d of %d",
		name(), len(cls.keys), issuer.Name, st.roots.Threshold, len(st.roots.Keys))
}

// judgeOpKey judges a credential signed by operational key o alone, at time
// at (not at the credential's IssuedAt, which its signer chose).
func judgeOpKey(v View, cred *Signed, issuer *AuthorityInfo, o *OpKeyInfo, name func() string, at time.Time, m sigMemo) (Reason, string) {
	kid := o.Key.KeyID()
	if _, err := cred.verifySignatures("", func(k []byte) (PublicKey, bool) { return o.Key, bytes.Equal(k, kid) }, m); err != nil {
		return ReasonBadSignature, fmt.Sprintf("%s's signature does not verify with %s's operational key %x: %v", name(), issuer.Name, kid, err)
	}
	if rid, ok := v.RevokedBy(o.ID, issuer.ID); ok {
		return ReasonRevoked, fmt.Sprintf("%s's operational key %x is disabled: %s revoked its delegation %s (revocation %s)", name(), kid, issuer.Name, o.ID.Short(), rid.Short())
	}
	if !o.Allows(KindCredential) {
		return ReasonBadSignature, fmt.Sprintf("%s is signed by operational key %x of %s, whose delegation %s allows only %v, not credentials", name(), kid, issuer.Name, o.ID.Short(), o.Kinds)
	}
	if r, msg := window(o.NotBefore, o.NotAfter, at); r != "" {
		return r, fmt.Sprintf("%s's operational key %x (delegation %s of %s) %s", name(), kid, o.ID.Short(), issuer.Name, msg)
	}
	return "", ""
}

// judgeEquivocation denies everything an equivocating issuer signs.
func judgeEquivocation(a *AuthorityInfo) (Reason, string) {
	if a.EquivocatedAt == 0 {
		return "", ""
	}
	return ReasonEquivocation, fmt.Sprintf("%s signed two different declarations at seq %d of its chain and has not rotated its root since: nothing it issues is trusted", a.Name, a.EquivocatedAt)
}

// ruleEquivocated reports whether rule ri was declared at or after the
// position where its authority equivocated (and has not rotated since).
func ruleEquivocated(v View, ri *RuleInfo) bool {
	a, ok := v.Authority(ri.Target)
	return ok && a.EquivocatedAt != 0 && ri.Seq >= a.EquivocatedAt
}

// equivocationMessage says why rule ri is not trusted.
func equivocationMessage(v View, ri *RuleInfo) string {
	a, _ := v.Authority(ri.Target)
	return fmt.Sprintf("is at seq %d, at or after seq %d where %s equivocated (signed two different declarations) without rotating since", ri.Seq, a.EquivocatedAt, a.Name)
}

// covers reports whether keys, all distinct, are keys of rs and at least its
// threshold.
func (rs RootSet) covers(keys []PublicKey) bool {
	if len(keys) < rs.Threshold {
		return false
	}
	for _, k := range keys {
		if !slices.ContainsFunc(rs.Keys, func(o PublicKey) bool { return o.Alg == k.Alg && bytes.Equal(o.Key, k.Key) }) {
			return false
		}
	}
	return true
}

func fmtOpenEnd(u int64) string {
	if u == 0 {
		return "no end"
	}
	return fmtUnix(u)
}
