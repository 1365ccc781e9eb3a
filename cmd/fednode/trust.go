package main

import (
	"bytes"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"github.com/spiffe/go-spiffe/v2/bundle/spiffebundle"
	"github.com/spiffe/go-spiffe/v2/spiffeid"

	"github.com/fednode/fednode/authority"
	"github.com/fednode/fednode/node"
)

// maxAnchorFile bounds a JWKS, PEM or bundle file trust reads.
const maxAnchorFile = 1 << 20

// readPEMCerts reads the DER certificates of a PEM file (CERTIFICATE
// blocks, in file order) for flag.
func readPEMCerts(flag, path string) ([][]byte, error) {
	b, err := readBounded(path, maxAnchorFile)
	if err != nil {
		return nil, usage("trust: --%s: %v", flag, err)
	}
	ders := pemCerts(b)
	if len(ders) == 0 {
		return nil, usage("trust: --%s %s: no PEM CERTIFICATE block found", flag, path)
	}
	return ders, nil
}

func pemCerts(b []byte) [][]byte {
	var out [][]byte
	for rest := b; ; {
		var blk *pem.Block
		blk, rest = pem.Decode(rest)
		if blk == nil {
			return out
		}
		if blk.Type == "CERTIFICATE" {
			out = append(out, blk.Bytes)
		}
	}
}

// spiffeAnchor reads a SPIFFE trust bundle: PEM CA certificates, or the
// SPIFFE bundle format (a JWKS with x509-svid keys). The trust domain is
// --trust-domain, else the spiffe:// URI name of the first PEM root.
func spiffeAnchor(path, trustDomain string) (*authority.SPIFFEAnchor, error) {
	b, err := readBounded(path, maxAnchorFile)
	if err != nil {
		return nil, usage("trust: --spiffe-bundle: %v", err)
	}
	var ders [][]byte
	if t := bytes.TrimSpace(b); len(t) > 0 && t[0] == '{' {
		if trustDomain == "" {
			return nil, usage("trust: --spiffe-bundle %s is a SPIFFE bundle (JSON): name its trust domain with --trust-domain", path)
		}
		td, err := spiffeid.TrustDomainFromString(trustDomain)
		if err != nil {
			return nil, usage("trust: --trust-domain %q: %v", trustDomain, err)
		}
		bd, err := spiffebundle.Parse(td, b)
		if err != nil {
			return nil, usage("trust: --spiffe-bundle %s: %v", path, err)
		}
		for _, c := range bd.X509Authorities() {
			ders = append(ders, c.Raw)
		}
		if len(ders) == 0 {
			return nil, usage("trust: --spiffe-bundle %s holds no X.509 authorities (x509-svid keys)", path)
		}
	} else if ders = pemCerts(b); len(ders) == 0 {
		return nil, usage("trust: --spiffe-bundle %s: neither a SPIFFE bundle (JSON) nor PEM CERTIFICATE blocks", path)
	}
	if trustDomain == "" {
		c, err := x509.ParseCertificate(ders[0])
		if err != nil {
			return nil, usage("trust: --spiffe-bundle %s: certificate 1: %v", path, err)
		}
		for _, u := range c.URIs {
			if u.Scheme == "spiffe" {
				trustDomain = u.Host
				break
			}
		}
		if trustDomain == "" {
			return nil, usage("trust: --spiffe-bundle %s: its first root names no spiffe:// trust domain: pass --trust-domain", path)
		}
	}
	return &authority.SPIFFEAnchor{TrustDomain: trustDomain, Roots: ders}, nil
}

func trustCmd() *cobra.Command {
	var home, issuer, jwks, x509Roots, spiffeBundle, trustDomain, opKey string
	var wait time.Duration
	var off offlineHead
	c := &cobra.Command{
		Use:   "trust --home DIR (--oidc-issuer URL --jwks FILE | --x509-roots FILE | --spiffe-bundle FILE [--trust-domain TD]) [--op-key FILE]",
		Short: "Declare the authority's external trust anchors: an OIDC issuer and its JWKS, X.509 roots, a SPIFFE trust bundle",
		Long: "trust signs an Anchors declaration and submits it to the home's running node (or, with --offline, writes it to --out " +
			"for fednode submit). The declaration REPLACES every anchor declared before (in the genesis or by an earlier trust): " +
			"pass in one command every anchor the authority should keep. Anchors declarations cannot be revoked; declare new ones. " +
			"It needs the root threshold, or an operational key delegated for anchors (--op-key).",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if home == "" {
				return usage("trust: --home is required")
			}
			if err := off.check(cmd, "trust"); err != nil {
				return err
			}
			if (issuer == "") != (jwks == "") {
				return usage("trust: --oidc-issuer and --jwks go together: the issuer's identifier and the file of its JSON Web Key Set")
			}
			if issuer == "" && x509Roots == "" && spiffeBundle == "" {
				return usage("trust: pass --oidc-issuer URL --jwks FILE, --x509-roots FILE or --spiffe-bundle FILE (or several: they replace every anchor declared before)")
			}
			if trustDomain != "" && spiffeBundle == "" {
				return usage("trust: --trust-domain goes with --spiffe-bundle")
			}
			var a authority.Anchors
			// from names the inputs in errors about the anchors themselves.
			var from []string
			for _, f := range [][2]string{{"jwks", jwks}, {"x509-roots", x509Roots}, {"spiffe-bundle", spiffeBundle}} {
				if f[1] != "" {
					from = append(from, "--"+f[0]+" "+f[1])
				}
			}
			what := "trust (" + strings.Join(from, ", ") + ")"
			if issuer != "" {
				b, err := readBounded(jwks, authority.MaxJWKSLen)
				if err != nil {
					return usage("trust: --jwks: %v", err)
				}
				a.OIDC = &authority.OIDCAnchor{Issuer: issuer, JWKS: b}
			}
			if x509Roots != "" {
				ders, err := readPEMCerts("x509-roots", x509Roots)
				if err != nil {
					return err
				}
				a.X509Roots = ders
			}
			if spiffeBundle != "" {
				s, err := spiffeAnchor(spiffeBundle, trustDomain)
				if err != nil {
					return err
				}
				a.SPIFFE = s
			}
			h, err := node.LoadHome(home)
			if err != nil {
				return usage("%v", err)
			}
			var opts node.SignOptions
			if opKey != "" {
				k, err := loadOpKey("trust", "op-key", opKey)
				if err != nil {
					return err
				}
				opts.Keys = []*authority.PrivateKey{k}
			}
			now := time.Now()
			if off.offline {
				d, err := off.decl(cmd, "trust", h, now)
				if err != nil {
					return err
				}
				d.Kind, d.Anchors = authority.KindAnchors, &a
				unlock, err := h.LockSigning()
				if err != nil {
					return err
				}
				defer unlock()
				var sd *authority.Signed
				if len(opts.Keys) > 0 {
					sd, err = authority.SignMulti(d, opts.Keys...)
				} else {
					sd, err = h.Sign(d)
				}
				if err != nil {
					return signingErr(what, err)
				}
				return off.write(cmd, "trust", sd)
			}
			cl, err := node.ClientForHome(h)
			if err != nil {
				return err
			}
			sd, err := node.SignNextWith(cmd.Context(), h, cl, now, func(d *authority.Declaration) {
				d.Kind, d.Anchors = authority.KindAnchors, &a
			}, opts)
			if err != nil {
				return signingErr(what, err)
			}
			fmt.Fprintf(cmd.OutOrStdout(), "anchors %s of %s: %s (replacing every anchor declared before)\n", sd.ID, h.Config.Name, describeAnchors(a))
			return waitAgreed(cmd, cl, sd.ID, wait)
		},
	}
	f := c.Flags()
	f.StringVar(&home, "home", "", "home directory of the declaring authority")
	f.StringVar(&issuer, "oidc-issuer", "", "an OIDC issuer identifier (compared byte for byte with tokens' iss), with --jwks")
	f.StringVar(&jwks, "jwks", "", "file holding the issuer's JSON Web Key Set (public EdDSA, ES256 or RS256 keys, each with a kid)")
	f.StringVar(&x509Roots, "x509-roots", "", "PEM file of X.509 root CA certificates")
	f.StringVar(&spiffeBundle, "spiffe-bundle", "", "a SPIFFE trust bundle: PEM CA certificates or the SPIFFE bundle format (JSON)")
	f.StringVar(&trustDomain, "trust-domain", "", "with --spiffe-bundle: the trust domain (default: the spiffe:// name of its first root)")
	f.StringVar(&opKey, "op-key", "", "sign with this operational key (its delegation must name anchors) instead of the root threshold")
	f.DurationVar(&wait, "wait", 20*time.Second, "wait this long for the declaration to be agreed (0: return once submitted)")
	off.flags(c)
	return c
}

func describeAnchors(a authority.Anchors) string {
	var parts []string
	if a.OIDC != nil {
		parts = append(parts, fmt.Sprintf("OIDC issuer %q", a.OIDC.Issuer))
	}
	if len(a.X509Roots) > 0 {
		parts = append(parts, fmt.Sprintf("%d X.509 roots", len(a.X509Roots)))
	}
	if a.SPIFFE != nil {
		parts = append(parts, fmt.Sprintf("SPIFFE trust domain %s (%d roots)", a.SPIFFE.TrustDomain, len(a.SPIFFE.Roots)))
	}
	if len(parts) == 0 {
		return "no anchors"
	}
	return fmt.Sprint(parts)
}
