package authority

import (
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rsa"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"slices"
	"sort"
	"time"
	"unicode/utf8"

	jose "github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"
	"github.com/spiffe/go-spiffe/v2/spiffeid"
)

// External credentials.
//
// An authority may vouch for principals of another identity system by
// declaring, in its genesis, trust anchors for it: an OIDC issuer and the
// JSON Web Key Set its tokens are signed with, X.509 roots, or a SPIFFE trust
// domain and its X.509 roots. A request may then present a JWT or an X.509
// chain instead of a native credential. Verify finds the authority whose
// anchor vouches for it (the principal's home), verifies it against that
// anchor only, takes a subject and attributes from it, and from there judges
// the request exactly as for a native credential of that home: the same
// rules, paths, Hops and Require.
//
// The genesis declares the first anchors; a later Anchors declaration
// (anchors.go) replaces them all. Verify fetches nothing: the JWKS is the
// declared bytes, never a discovery document or a jwks_uri.
//
// WARNING: an external credential carries no proof of possession (a JWT is
// a bearer token; an X.509 chain proves nothing unless the transport
// authenticated the holder of the leaf key, as mutual TLS does). Whoever
// presents it is taken for its subject.

// Bounds on external anchors and credentials.
const (
	// MaxJWKSLen bounds a declared JWKS, in bytes.
	MaxJWKSLen = 64 << 10
	// MaxJWKSKeys bounds the keys of a declared JWKS.
	MaxJWKSKeys = 16
	// MaxJWTLen bounds a presented JWT, in bytes.
	MaxJWTLen = 16 << 10
	// MaxCertLen bounds one DER certificate, declared or presented.
	MaxCertLen = 16 << 10
	// MaxX509Roots bounds the roots of one anchor (X509Roots, or a SPIFFE
	// anchor's Roots).
	MaxX509Roots = 16
	// MaxX509Chain bounds a presented chain, leaf included.
	MaxX509Chain = 8
	// MaxAnchorCandidates bounds the authorities an external credential is
	// tried against (those declaring its issuer, in acceptance order), so
	// that many authorities declaring one issuer cost a bounded search.
	MaxAnchorCandidates = 8
	// JWTLeeway is the clock skew allowed on a JWT's exp and nbf: none, as
	// for native credentials; the verifier's time is given, not read.
	JWTLeeway = 0 * time.Second
	// MinRSABits is the smallest RSA modulus a JWKS may declare.
	MinRSABits = 2048
)

// ErrBadAnchor: a genesis declares an external trust anchor that does not
// parse or breaks a bound. Returned wrapped, from Parse and Sign.
var ErrBadAnchor = errors.New("bad external trust anchor")

// OIDCAnchor trusts the JWTs of one OIDC issuer.
type OIDCAnchor struct {
	// Issuer is the issuer identifier, compared byte for byte with a
	// token's iss.
	Issuer string `cbor:"1,keyasint"`
	// JWKS is the issuer's JSON Web Key Set (RFC 7517), public keys only,
	// each with a unique kid and of an allowed algorithm (EdDSA, ES256,
	// RS256).
	JWKS []byte `cbor:"2,keyasint"`
}

// SPIFFEAnchor trusts the X.509 SVIDs of one SPIFFE trust domain.
type SPIFFEAnchor struct {
	// TrustDomain is the trust domain's name ("example.org"), canonical.
	TrustDomain string `cbor:"1,keyasint"`
	// Roots is the trust domain's X.509 bundle: DER CA certificates.
	Roots [][]byte `cbor:"2,keyasint"`
}

// AnchorView is a View that can find authorities by their external trust
// anchors. Verify needs one to judge an external credential; presented to a
// plain View, one is denied unknown-authority. *Graph implements it. The
// returned slices belong to the view: the caller must not modify them.
type AnchorView interface {
	View
	// AuthoritiesWithIssuer returns the authorities whose anchors in
	// effect (genesis or latest Anchors declaration) declare the OIDC
	// issuer iss, in the order they were indexed.
	AuthoritiesWithIssuer(iss string) []ID
	// AuthoritiesWithRoot returns the authorities whose anchors in effect
	// declare an X.509 root (X509Roots or SPIFFE Roots) with the raw
	// subject name rawSubject, in the order they were indexed.
	AuthoritiesWithRoot(rawSubject []byte) []ID
}

// jwtAlgs are the JWS algorithms accepted, in tokens and in a JWKS.
var jwtAlgs = []jose.SignatureAlgorithm{jose.EdDSA, jose.ES256, jose.RS256}

func (g *Genesis) validateAnchors() error { return validAnchors(g.OIDC, g.X509Roots, g.SPIFFE) }

// validAnchors checks a set of external trust anchors, as a genesis or an
// Anchors declaration holds them.
func validAnchors(oidc *OIDCAnchor, x509Roots [][]byte, spiffe *SPIFFEAnchor) error {
	if o := oidc; o != nil {
		if o.Issuer == "" || len(o.Issuer) > MaxPatternLen || !utf8.ValidString(o.Issuer) {
			return fmt.Errorf("%w: OIDC issuer must be 1 to %d bytes of UTF-8", ErrBadAnchor, MaxPatternLen)
		}
		if _, err := parseJWKS(o.JWKS); err != nil {
			return fmt.Errorf("%w: OIDC issuer %q: %w", ErrBadAnchor, abbrev(o.Issuer), err)
		}
	}
	if x509Roots != nil {
		if _, err := parseRoots(x509Roots); err != nil {
			return fmt.Errorf("%w: X.509 roots: %w", ErrBadAnchor, err)
		}
	}
	if s := spiffe; s != nil {
		td, err := spiffeid.TrustDomainFromString(s.TrustDomain)
		if err != nil || td.Name() != s.TrustDomain {
			return fmt.Errorf("%w: SPIFFE trust domain %q is not a canonical trust domain name", ErrBadAnchor, abbrev(s.TrustDomain))
		}
		if _, err := parseRoots(s.Roots); err != nil {
			return fmt.Errorf("%w: SPIFFE roots of %s: %w", ErrBadAnchor, s.TrustDomain, err)
		}
	}
	return nil
}

// parseJWKS parses a declared JWKS and checks every key.
func parseJWKS(b []byte) (*jose.JSONWebKeySet, error) {
	if len(b) == 0 || len(b) > MaxJWKSLen {
		return nil, fmt.Errorf("JWKS is %d bytes: want 1 to %d", len(b), MaxJWKSLen)
	}
	var set jose.JSONWebKeySet
	if err := json.Unmarshal(b, &set); err != nil {
		return nil, fmt.Errorf("JWKS: %w", err)
	}
	if len(set.Keys) == 0 || len(set.Keys) > MaxJWKSKeys {
		return nil, fmt.Errorf("JWKS has %d keys: want 1 to %d", len(set.Keys), MaxJWKSKeys)
	}
	seen := map[string]bool{}
	for i := range set.Keys {
		k := &set.Keys[i]
		if k.KeyID == "" || seen[k.KeyID] {
			return nil, fmt.Errorf("JWKS key %d: want a kid, unique in the set, got %q", i, k.KeyID)
		}
		seen[k.KeyID] = true
		if !k.IsPublic() || !k.Valid() {
			return nil, fmt.Errorf("JWKS key %q: want a valid public key", k.KeyID)
		}
		alg, err := keyAlg(k.Key)
		if err != nil {
			return nil, fmt.Errorf("JWKS key %q: %w", k.KeyID, err)
		}
		if k.Algorithm != "" && k.Algorithm != string(alg) {
			return nil, fmt.Errorf("JWKS key %q: declares alg %q for a %s key", k.KeyID, k.Algorithm, alg)
		}
		if k.Use != "" && k.Use != "sig" {
			return nil, fmt.Errorf("JWKS key %q: use %q, want sig", k.KeyID, k.Use)
		}
	}
	return &set, nil
}

// keyAlg is the one JWS algorithm accepted for a public key.
func keyAlg(k any) (jose.SignatureAlgorithm, error) {
	switch k := k.(type) {
	case ed25519.PublicKey:
		return jose.EdDSA, nil
	case *ecdsa.PublicKey:
		if k.Curve != elliptic.P256() {
			return "", errors.New("an ECDSA key must be on P-256 (ES256)")
		}
		return jose.ES256, nil
	case *rsa.PublicKey:
		if k.N.BitLen() < MinRSABits {
			return "", fmt.Errorf("an RSA key of %d bits, under %d", k.N.BitLen(), MinRSABits)
		}
		return jose.RS256, nil
	}
	return "", fmt.Errorf("a %T key: want Ed25519, ECDSA P-256 or RSA", k)
}

// parseRoots parses declared root certificates: 1 to MaxX509Roots CA
// certificates of at most MaxCertLen bytes each.
func parseRoots(ders [][]byte) ([]*x509.Certificate, error) {
	if len(ders) == 0 || len(ders) > MaxX509Roots {
		return nil, fmt.Errorf("%d roots: want 1 to %d", len(ders), MaxX509Roots)
	}
	out := make([]*x509.Certificate, 0, len(ders))
	for i, der := range ders {
		if len(der) > MaxCertLen {
			return nil, fmt.Errorf("root %d is %d bytes, over %d", i, len(der), MaxCertLen)
		}
		c, err := x509.ParseCertificate(der)
		if err != nil {
			return nil, fmt.Errorf("root %d: %w", i, err)
		}
		if !c.BasicConstraintsValid || !c.IsCA {
			return nil, fmt.Errorf("root %d (%s) is not a CA certificate", i, c.Subject)
		}
		out = append(out, c)
	}
	return out, nil
}

// anchorIndex finds authorities by their external anchors. The zero value
// is empty and ready.
type anchorIndex struct {
	byIssuer  map[string][]ID
	bySubject map[string][]ID
}

// add indexes a's anchors in effect, validated when they were declared.
func (x *anchorIndex) add(a *AuthorityInfo) {
	issuers, subjects := anchorKeys(a)
	for _, iss := range issuers {
		if x.byIssuer == nil {
			x.byIssuer = map[string][]ID{}
		}
		x.byIssuer[iss] = append(x.byIssuer[iss], a.ID)
	}
	for _, s := range subjects {
		if x.bySubject == nil {
			x.bySubject = map[string][]ID{}
		}
		x.bySubject[s] = append(x.bySubject[s], a.ID)
	}
}

// anchorKeys are the index keys of a's anchors in effect: its OIDC issuer,
// and the distinct raw subjects of its X.509 and SPIFFE roots.
func anchorKeys(a *AuthorityInfo) (issuers, subjects []string) {
	if a.OIDC != nil {
		issuers = []string{a.OIDC.Issuer}
	}
	ders := a.X509Roots
	if a.SPIFFE != nil {
		ders = append(slices.Clip(ders), a.SPIFFE.Roots...)
	}
	for _, der := range ders {
		c, err := x509.ParseCertificate(der)
		if err != nil {
			continue // cannot happen: validated when declared
		}
		if s := string(c.RawSubject); !slices.Contains(subjects, s) {
			subjects = append(subjects, s)
		}
	}
	return issuers, subjects
}

// AuthoritiesWithIssuer implements AnchorView.
func (g *Graph) AuthoritiesWithIssuer(iss string) []ID { return g.anchors.byIssuer[iss] }

// AuthoritiesWithRoot implements AnchorView.
func (g *Graph) AuthoritiesWithRoot(rawSubject []byte) []ID {
	return g.anchors.bySubject[string(rawSubject)]
}

// external reports whether the request presents an external credential.
func external(req *Request) bool { return req.JWT != "" || len(req.X509) > 0 }

// decideExternal is decide for a request presenting a JWT or an X.509
// chain: it verifies it, then judges the principal as decide does.
func decideExternal(v View, req *Request, o *verifyOptions, d *Decision, st *stats) {
	deny := func(r Reason, format string, args ...any) {
		d.Reason, d.Message = r, fmt.Sprintf(format, args...)
	}
	n := 0
	for _, set := range []bool{len(req.Credential) > 0, req.JWT != "", len(req.X509) > 0} {
		if set {
			n++
		}
	}
	if n != 1 {
		deny(ReasonMalformed, "the request presents %d credentials: present exactly one of a credential, a JWT and an X.509 chain", n)
		return
	}
	if len(req.Delegation) > 0 || len(req.PoP) > 0 {
		deny(ReasonMalformed, "an external credential takes no delegation chain and no proof of possession")
		return
	}
	av, ok := v.(AnchorView)
	if !ok {
		deny(ReasonUnknownAuthority, "the graph view cannot find authorities by their external trust anchors (it is not an AnchorView)")
		return
	}
	var p *principal
	var reason Reason
	var msg string
	if req.JWT != "" {
		p, reason, msg = verifyJWT(av, req, o.at)
	} else {
		p, reason, msg = verifyX509(av, req.X509, o.at)
	}
	if p != nil {
		if p.home != nil {
			d.Issuer = p.home.ID
			d.Chain = append(d.Chain, p.home.ID)
		}
		d.Subject = p.subject
	}
	if reason != "" {
		deny(reason, "%s", msg)
		return
	}
	if rid, ok := v.RevokedBy(p.home.ID, p.home.ID); ok {
		d.Chain = append(d.Chain, rid)
		deny(ReasonRevoked, "the external credential's home authority %s has revoked itself (revocation %s)", p.home.Name, rid.Short())
		return
	}
	judgePrincipal(v, req, o, d, st, p.home, p.subject, p.attrs)
}

// principal is what a verified external credential states: who, stated by
// which authority. On a deny it holds what is known so far.
type principal struct {
	home    *AuthorityInfo
	subject string
	attrs   []Attr
}

// jwtClaims are the registered claims Verify reads.
type jwtClaims struct {
	Issuer    string           `json:"iss"`
	Subject   string           `json:"sub"`
	Audience  jwt.Audience     `json:"aud"`
	Expiry    *jwt.NumericDate `json:"exp"`
	NotBefore *jwt.NumericDate `json:"nbf"`
}

func verifyJWT(v AnchorView, req *Request, at time.Time) (*principal, Reason, string) {
	if len(req.JWT) > MaxJWTLen {
		return nil, ReasonMalformed, fmt.Sprintf("the JWT is %d bytes, over %d (MaxJWTLen)", len(req.JWT), MaxJWTLen)
	}
	tok, err := jwt.ParseSigned(req.JWT, jwtAlgs)
	if err != nil {
		return nil, ReasonMalformed, fmt.Sprintf("the JWT is not a compact JWS signed with one of %v: %v", jwtAlgs, err)
	}
	if len(tok.Headers) != 1 {
		return nil, ReasonMalformed, fmt.Sprintf("the JWT has %d signatures, want 1", len(tok.Headers))
	}
	kid, alg := tok.Headers[0].KeyID, tok.Headers[0].Algorithm
	// Peek at the unverified claims only to choose whose keys to verify
	// with; nothing else is read before the signature verifies.
	var peek jwtClaims
	if err := tok.UnsafeClaimsWithoutVerification(&peek); err != nil {
		return nil, ReasonMalformed, fmt.Sprintf("the JWT's claims are not a JSON object of registered claims: %v", err)
	}
	if peek.Issuer == "" {
		return nil, ReasonMalformed, "the JWT has no iss claim"
	}
	cands := v.AuthoritiesWithIssuer(peek.Issuer)
	if len(cands) == 0 {
		return nil, ReasonUnknownAuthority, fmt.Sprintf("no authority in the graph at version %d declares the OIDC issuer %q", v.Version(), abbrev(peek.Issuer))
	}
	var (
		home      *AuthorityInfo
		claims    jwtClaims
		raw       map[string]any
		keyed     *AuthorityInfo // the first candidate that has the kid
		verifyErr error
	)
	for _, id := range cands[:min(len(cands), MaxAnchorCandidates)] {
		a, ok := v.Authority(id)
		if !ok || a.OIDC == nil {
			continue
		}
		set, err := parseJWKS(a.OIDC.JWKS)
		if err != nil {
			continue // cannot happen: validated with the genesis
		}
		keys := set.Key(kid)
		if kid == "" || len(keys) == 0 {
			continue
		}
		if keyed == nil {
			keyed = a
		}
		if want, _ := keyAlg(keys[0].Key); string(want) != alg {
			verifyErr = fmt.Errorf("key %q is for alg %s, but the JWT says alg %s", kid, want, alg)
			continue
		}
		claims, raw = jwtClaims{}, nil
		if err := tok.Claims(keys[0], &claims, &raw); err != nil {
			verifyErr = err
			continue
		}
		home = a
		break
	}
	if home == nil {
		if keyed == nil {
			return &principal{subject: peek.Subject}, ReasonUntrustedExternal, fmt.Sprintf("the JWT of issuer %q names key %q, which no JWKS declared for that issuer holds", abbrev(peek.Issuer), abbrev(kid))
		}
		return &principal{home: keyed, subject: peek.Subject}, ReasonBadSignature, fmt.Sprintf("the JWT's signature does not verify with key %q of %s's JWKS: %v", abbrev(kid), keyed.Name, verifyErr)
	}
	p := &principal{home: home, subject: claims.Subject}
	if claims.Subject == "" || len(claims.Subject) > MaxPatternLen || !utf8.ValidString(claims.Subject) {
		return p, ReasonMalformed, fmt.Sprintf("the JWT's sub must be 1 to %d bytes of UTF-8", MaxPatternLen)
	}
	if claims.Expiry == nil {
		return p, ReasonMalformed, "the JWT has no exp claim: a bearer token must expire"
	}
	target, ok := v.Authority(req.Target)
	if !ok {
		return p, ReasonUnknownAuthority, fmt.Sprintf("the target authority %s is not in the graph at version %d", req.Target.Short(), v.Version())
	}
	if !claims.Audience.Contains(target.Name) && !claims.Audience.Contains(target.ID.String()) {
		return p, ReasonAudienceMismatch, fmt.Sprintf("the JWT's audience %q names neither the target %s nor its ID %s", []string(claims.Audience), target.Name, target.ID)
	}
	var nbf int64
	if claims.NotBefore != nil {
		nbf = claims.NotBefore.Time().Add(-JWTLeeway).Unix()
	}
	naf := claims.Expiry.Time().Add(JWTLeeway).Unix()
	if reason, msg := window(max(nbf, 0), max(naf, 1), at); reason != "" {
		return p, reason, fmt.Sprintf("the JWT of %s for %q %s", home.Name, claims.Subject, msg)
	}
	p.attrs = claimAttrs(raw)
	return p, "", ""
}

// claimAttrs turns a verified token's string-valued claims into attributes
// for rules' Require: those whose key is a valid attribute key and whose
// value is at most MaxPatternLen bytes, sorted, the first MaxAttrs. Other
// claims a rule cannot require anyway.
func claimAttrs(raw map[string]any) []Attr {
	var out []Attr
	for k, val := range raw {
		s, ok := val.(string)
		if !ok || validName("claim", k) != nil || len(s) > MaxPatternLen || !utf8.ValidString(s) {
			continue
		}
		out = append(out, Attr{Key: k, Value: s})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Key < out[j].Key })
	if len(out) > MaxAttrs {
		out = out[:MaxAttrs]
	}
	return out
}

func verifyX509(v AnchorView, ders [][]byte, at time.Time) (*principal, Reason, string) {
	if len(ders) > MaxX509Chain {
		return nil, ReasonMalformed, fmt.Sprintf("the X.509 chain has %d certificates, over %d (MaxX509Chain)", len(ders), MaxX509Chain)
	}
	certs := make([]*x509.Certificate, 0, len(ders))
	for i, der := range ders {
		if len(der) > MaxCertLen {
			return nil, ReasonMalformed, fmt.Sprintf("certificate %d of the chain is %d bytes, over %d (MaxCertLen)", i, len(der), MaxCertLen)
		}
		c, err := x509.ParseCertificate(der)
		if err != nil {
			return nil, ReasonMalformed, fmt.Sprintf("certificate %d of the chain: %v", i, err)
		}
		certs = append(certs, c)
	}
	leaf := certs[0]
	subject, sid, err := leafSubject(leaf)
	p := &principal{subject: subject}
	if err != nil {
		return p, ReasonUntrustedExternal, err.Error()
	}
	if len(subject) > MaxPatternLen || !utf8.ValidString(subject) {
		return nil, ReasonMalformed, fmt.Sprintf("the chain's leaf names a subject longer than %d bytes or not UTF-8", MaxPatternLen)
	}
	if leaf.IsCA {
		return p, ReasonUntrustedExternal, fmt.Sprintf("the chain's leaf %s is a CA certificate: present the end-entity certificate first", leaf.Subject)
	}
	inter := x509.NewCertPool()
	for _, c := range certs[1:] {
		inter.AddCert(c)
	}
	top := certs[len(certs)-1]
	cands := v.AuthoritiesWithRoot(top.RawIssuer)
	if len(cands) == 0 {
		return p, ReasonUntrustedExternal, fmt.Sprintf("no authority in the graph at version %d declares a root for %s, the issuer of the chain's last certificate (is an intermediate missing?)", v.Version(), top.Issuer)
	}
	// On a deny, the first failure names the decision, and the authority
	// it was judged under stands as the would-be home in its chain.
	var firstReason Reason
	var firstMsg string
	var firstHome *AuthorityInfo
	fail := func(a *AuthorityInfo, r Reason, msg string) {
		if firstReason == "" {
			firstReason, firstMsg, firstHome = r, msg, a
		}
	}
	for _, id := range cands[:min(len(cands), MaxAnchorCandidates)] {
		a, ok := v.Authority(id)
		if !ok {
			continue
		}
		try := func(ders [][]byte) error {
			roots, err := parseRoots(ders)
			if err != nil {
				return err // cannot happen: validated with the genesis
			}
			pool := x509.NewCertPool()
			for _, r := range roots {
				pool.AddCert(r)
			}
			_, err = leaf.Verify(x509.VerifyOptions{
				Roots:         pool,
				Intermediates: inter,
				CurrentTime:   at,
				KeyUsages:     []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
			})
			return err
		}
		if len(a.X509Roots) > 0 {
			err := try(a.X509Roots)
			if err == nil {
				p.home = a
				return p, "", ""
			}
			fail(a, x509Reason(certs, at, err), fmt.Sprintf("the X.509 chain of %q does not verify under %s's roots: %v", subject, a.Name, err))
		}
		if a.SPIFFE != nil {
			err := try(a.SPIFFE.Roots)
			if err != nil {
				fail(a, x509Reason(certs, at, err), fmt.Sprintf("the X.509 chain of %q does not verify under the SPIFFE roots of %s (%s): %v", subject, a.Name, a.SPIFFE.TrustDomain, err))
				continue
			}
			if sid.IsZero() {
				fail(a, ReasonUntrustedExternal, fmt.Sprintf("the chain verifies under the SPIFFE roots of %s, but its leaf %s has no SPIFFE ID (a spiffe:// URI name)", a.Name, leaf.Subject))
				continue
			}
			if sid.TrustDomain().Name() != a.SPIFFE.TrustDomain {
				fail(a, ReasonUntrustedExternal, fmt.Sprintf("the chain verifies under the SPIFFE roots of %s, but its leaf's SPIFFE ID %q is not in the trust domain %s", a.Name, sid, a.SPIFFE.TrustDomain))
				continue
			}
			p.home = a
			return p, "", ""
		}
	}
	p.home = firstHome
	return p, firstReason, firstMsg
}

// x509Reason is the reason code of a chain verification error: expired or
// not-yet-valid when a certificate's window excludes at, else
// untrusted-external.
func x509Reason(certs []*x509.Certificate, at time.Time, err error) Reason {
	var inv x509.CertificateInvalidError
	if errors.As(err, &inv) && inv.Reason == x509.Expired {
		for _, c := range certs {
			if at.Before(c.NotBefore) {
				return ReasonNotYetValid
			}
		}
		return ReasonExpired
	}
	return ReasonUntrustedExternal
}

// leafSubject names the principal of a leaf certificate: its SPIFFE ID (a
// spiffe:// URI SAN), else its first DNS SAN, else its subject DN. A leaf
// with more than one URI SAN of scheme spiffe, or one that does not parse,
// is refused, as the X.509-SVID specification says.
func leafSubject(leaf *x509.Certificate) (string, spiffeid.ID, error) {
	var spiffes []*url.URL
	for _, u := range leaf.URIs {
		if u.Scheme == "spiffe" {
			spiffes = append(spiffes, u)
		}
	}
	switch {
	case len(spiffes) > 1:
		return "", spiffeid.ID{}, fmt.Errorf("the chain's leaf %s has %d SPIFFE IDs, want at most 1", leaf.Subject, len(spiffes))
	case len(spiffes) == 1:
		id, err := spiffeid.FromURI(spiffes[0])
		if err != nil {
			return "", spiffeid.ID{}, fmt.Errorf("the chain's leaf %s has an invalid SPIFFE ID: %w", leaf.Subject, err)
		}
		return id.String(), id, nil
	case len(leaf.DNSNames) > 0:
		return leaf.DNSNames[0], spiffeid.ID{}, nil
	}
	s := leaf.Subject.String()
	if s == "" || len(s) > MaxPatternLen {
		return s, spiffeid.ID{}, fmt.Errorf("the chain's leaf has no SPIFFE ID, no DNS name and no usable subject name")
	}
	return s, spiffeid.ID{}, nil
}
