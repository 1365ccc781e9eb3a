package authority

// Counts is what one decision cost the path search.
type Counts struct {
	Direct   int // direct rules of the target judged (not bounded)
	Examined int // rules judged by the path search (<= MaxRulesExamined)
	Scanned  int // rule entries the path search looked at (<= MaxRulesScanned)
}

// VerifyCounting is Verify that also reports its Counts, so that tests can
// hold the search to its bounds.
func VerifyCounting(v View, req Request, opts ...Option) (Decision, Counts) {
	d, st := verify(v, req, opts...)
	return d, Counts{Direct: st.direct, Examined: st.examined, Scanned: st.scanned}
}
