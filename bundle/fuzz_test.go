package bundle

import (
	"bytes"
	"errors"
	"testing"
)

// FuzzOpen feeds Open (and OpenDelta on the fixture's base) arbitrary bytes:
// they must never panic, every refusal must wrap ErrInvalid, and an accepted
// bundle's graph must hold exactly the declarations its header counts.
func FuzzOpen(f *testing.F) {
	fx := newFixture(f)
	f.Add(fx.full)
	f.Add(fx.delta)
	f.Add(fx.full[:len(fx.full)/2])
	f.Add(fx.rule1.Raw)
	f.Add(forge(f, fx.contents(f, 0, 3, fx.pki), fx.pki, fx.stranger))
	f.Add([]byte{})
	base := mustOpen(f, fx.full, Policy{})
	f.Fuzz(func(t *testing.T, b []byte) {
		for _, open := range []func() (*Bundle, error){
			func() (*Bundle, error) { return Open(b, Policy{}) },
			func() (*Bundle, error) { return OpenDelta(base, b, Policy{}) },
		} {
			bd, err := open()
			if err != nil {
				if !errors.Is(err, ErrInvalid) {
					t.Fatalf("refusal does not wrap ErrInvalid: %v", err)
				}
				continue
			}
			if bd.Graph.Version() != bd.GraphVersion || bd.Head.Size != bd.GraphVersion ||
				uint64(len(bd.Declarations)) != bd.GraphVersion-bd.BaseVersion || uint64(len(bd.all)) != bd.GraphVersion {
				t.Fatalf("accepted bundle: graph version %d, header %d, head %d, %d declarations from %d",
					bd.Graph.Version(), bd.GraphVersion, bd.Head.Size, len(bd.Declarations), bd.BaseVersion)
			}
			if len(bd.Signers) == 0 || len(bd.Trusted) == 0 {
				t.Fatalf("accepted bundle without a counted signer")
			}
			// checkCanonical stands in for re-encoding: what opens must be
			// exactly what the encoder writes.
			o := outerOf(t, b)
			if err := decodeCanonical(b, &outer{}); err != nil {
				t.Fatalf("accepted bundle does not re-encode to itself: %v", err)
			}
			if err := decodeCanonical(o.Payload, &payload{}); err != nil {
				t.Fatalf("accepted payload does not re-encode to itself: %v", err)
			}
		}
	})
}

// FuzzCanonical checks checkCanonical against the encoder: whatever the
// strict decoders accept must be exactly what the encoder writes for the
// decoded value, for the payload and the outer structure.
func FuzzCanonical(f *testing.F) {
	fx := newFixture(f)
	f.Add(outerOf(f, fx.full).Payload)
	f.Add(outerOf(f, fx.delta).Payload)
	f.Add(fx.full)
	f.Add(fx.delta)
	f.Fuzz(func(t *testing.T, b []byte) {
		if c, err := decodePayload(b); err == nil {
			again, err := encMode.Marshal(&payload{Format: FormatVersion, Contents: *c})
			if err != nil || !bytes.Equal(again, b) {
				t.Fatalf("payload accepted but re-encodes differently (%v):\n% x\n% x", err, b, again)
			}
		}
		if o, err := decodeOuter(b); err == nil {
			again, err := encMode.Marshal(o)
			if err != nil || !bytes.Equal(again, b) {
				t.Fatalf("outer structure accepted but re-encodes differently (%v):\n% x\n% x", err, b, again)
			}
		}
	})
}
