package authority

import "time"

// JudgeCredentialSigners exposes to the external tests the signer judgement
// Verify makes of a credential (judge.go), so that it is tested on its own,
// reason by reason.
func JudgeCredentialSigners(v View, raw []byte, at time.Time) (Reason, string) {
	cred, err := Parse(raw)
	if err != nil {
		return ReasonMalformed, err.Error()
	}
	issuer, ok := v.Authority(cred.Decl.Authority)
	if !ok {
		return ReasonUnknownAuthority, "unknown issuer"
	}
	return judgeCredentialSigners(v, cred, issuer, func() string { return "the credential" }, at, sigMemo{})
}

// RuleEquivocated exposes ruleEquivocated.
var RuleEquivocated = ruleEquivocated
