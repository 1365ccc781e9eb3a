package testnet

// Scenario forms for key rotation and equivocation (issue 3): rotate,
// equivocate, expect-evidence, and credential's signed-by= and
// signatures= keys. The runner's half is run_equiv.go.

import (
	"errors"
	"time"

	"github.com/fednode/fednode/authority"
)

// RotateCmd is `rotate AUTH [keys=N] [threshold=K]`: AUTH's current root
// threshold signs a rotation to N fresh root keys (0: as many as it has)
// with threshold K (0: its current one); from then on the runner signs
// AUTH's declarations with the new keys.
type RotateCmd struct {
	Auth string
	// Keys and Threshold: 0 when not given. Invariant: Threshold <= Keys
	// when both are given.
	Keys, Threshold int
}

// EquivocateCmd is `equivocate AUTH` (test only): AUTH signs two different
// rules at its next chain position and submits them at two nodes at once,
// so the mesh sees both.
type EquivocateCmd struct{ Auth string }

// ExpectEvidenceCmd is `expect-evidence AUTH [on=all|NODE] [within=DUR]`:
// every named node's agreed graph holds evidence that AUTH equivocated (as
// its status lists it).
type ExpectEvidenceCmd struct {
	Auth   string
	On     string        // "all" (the default) or an authority name
	Within time.Duration // 0 = check once. Invariant: >= 0.
}

// Values of credential's signed-by=.
const (
	SignedByCurrent = "current"
	SignedByOld     = "old"
)

var signedByValue = choiceValue(SignedByCurrent, SignedByOld)

// credentialGovernanceKeys are credential's keys for choosing its signers:
// signed-by=old signs with the root set the latest rotation retired
// (key-rotated), signatures=N with only the first N keys of the set
// (threshold-not-met below its threshold).
var credentialGovernanceKeys = []keySpec{
	{name: "signed-by", meta: "current|old", parse: signedByValue},
	{name: "signatures", meta: "N", parse: countValue(authority.MaxRootKeys)},
}

// credentialSigners fills c's signer choice from the line and checks it.
func credentialSigners(a *stepArgs, c *CredentialCmd) error {
	c.SignedBy, c.Signatures = keyVal[string](a, "signed-by"), keyVal[int](a, "signatures")
	if c.From != "" && (c.SignedBy != "" || c.Signatures != 0) {
		return errors.New("from= signs with the parent's holder key: signed-by= and signatures= choose root keys, so they do not go with it")
	}
	return nil
}

var rotateOp = &opSpec{
	op:  "rotate",
	pos: []posSpec{{label: "AUTH", parse: nameValue, ref: refAuthority}},
	keys: []keySpec{
		{name: "keys", meta: "N", parse: countValue(authority.MaxRootKeys)},
		{name: "threshold", meta: "K", parse: countValue(authority.MaxRootKeys)},
	},
	build: func(a *stepArgs) (any, error) {
		c := &RotateCmd{Auth: posVal[string](a, 0), Keys: keyVal[int](a, "keys"), Threshold: keyVal[int](a, "threshold")}
		if c.Keys > 0 && c.Threshold > c.Keys {
			return nil, errors.New("threshold= exceeds keys=: a threshold counts signatures by distinct keys of the new set")
		}
		return c, nil
	},
}

var equivocateOp = &opSpec{
	op:  "equivocate",
	pos: []posSpec{{label: "AUTH", parse: nameValue, ref: refAuthority}},
	build: func(a *stepArgs) (any, error) {
		return &EquivocateCmd{Auth: posVal[string](a, 0)}, nil
	},
}

var expectEvidenceOp = &opSpec{
	op:  "expect-evidence",
	pos: []posSpec{{label: "AUTH", parse: nameValue, ref: refAuthority}},
	keys: []keySpec{
		{name: "on", meta: "all|NODE", dflt: onAll, parse: nameValue, ref: refOn},
		{name: "within", meta: "DUR", parse: nonNegDuration},
	},
	build: func(a *stepArgs) (any, error) {
		return &ExpectEvidenceCmd{Auth: posVal[string](a, 0), On: keyVal[string](a, "on"), Within: keyVal[time.Duration](a, "within")}, nil
	},
}
