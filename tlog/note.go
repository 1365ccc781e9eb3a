package tlog

import (
	"bytes"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"slices"
	"strings"
	"unicode"
	"unicode/utf8"

	"golang.org/x/mod/sumdb/note"

	"github.com/fednode/fednode/authority"
)

// Errors of signing and opening notes; each is returned wrapped, use
// errors.Is. ErrMalformed (checkpoint.go) covers notes that do not parse.
var (
	// ErrBadSignature: a signature line names a known key (its name and key
	// ID match a Witness) but does not verify. The whole note is refused:
	// the text was altered or a signer is broken.
	ErrBadSignature = errors.New("bad checkpoint signature")
	// ErrUnverified: no signature of the note is from a known key.
	ErrUnverified = errors.New("no signature from a known key")
	// ErrBadKey: a key or name that cannot sign or verify notes (an
	// unknown algorithm, wrong size, empty or oversized name).
	ErrBadKey = errors.New("unusable note key")
)

// noteAlgEd25519 is the signed-note signature type of Ed25519 signatures.
const noteAlgEd25519 = 0x01

// noteAlgOther is the first byte of the type identifiers of signature
// algorithms c2sp.org/signed-note assigns no byte to; a label naming the
// algorithm follows it (NoteType).
const noteAlgOther = 0xff

// NoteType is the signed-note signature type identifier of keys of alg: the
// bytes between the key name's newline and the public key in the key ID
// hash, and before the public key in a verifier key's base64:
//
//	Ed25519                   0x01 (the spec's own, byte-identical notes)
//	ML-DSA-65                 0xff "fednode/mldsa65" 0x00
//	ML-DSA-65 + Ed25519       0xff "fednode/mldsa65-ed25519" 0x00
//
// The spec assigns no byte to ML-DSA; 0xff followed by a NUL-terminated
// label keeps fednode's types apart from any the spec assigns later and from
// each other. The signature is what authority.PrivateKey.SignNoteText makes:
// ML-DSA-65 (FIPS 204, pure, empty context) of the note text, or the
// composite of authority.AlgHybrid over it. It returns nil for an algorithm
// that cannot sign notes.
func NoteType(alg authority.Alg) []byte {
	switch alg {
	case authority.AlgEd25519:
		return []byte{noteAlgEd25519}
	case authority.AlgMLDSA65:
		return append([]byte{noteAlgOther}, "fednode/mldsa65\x00"...)
	case authority.AlgHybrid:
		return append([]byte{noteAlgOther}, "fednode/mldsa65-ed25519\x00"...)
	}
	return nil
}

// keyHash is the note key ID of key under keyName.
func keyHash(keyName string, key authority.PublicKey) uint32 {
	h := sha256.New()
	h.Write([]byte(keyName))
	h.Write([]byte{'\n'})
	h.Write(NoteType(key.Alg))
	h.Write(key.Key)
	return binary.BigEndian.Uint32(h.Sum(nil))
}

// KeyName is the note key name of an authority named name: name itself if
// it is already a valid key name and has no '%', else name with every '%',
// '+', Unicode space and control character (and every byte of invalid UTF-8)
// replaced by %XX of its UTF-8 bytes. The mapping is one-to-one, so distinct
// authority names keep distinct key names.
func KeyName(name string) string {
	needs := func(r rune) bool {
		return r == '%' || r == '+' || unicode.IsSpace(r) || unicode.IsControl(r) || r == utf8.RuneError
	}
	if strings.IndexFunc(name, needs) < 0 {
		return name
	}
	var b strings.Builder
	for i := 0; i < len(name); {
		r, size := utf8.DecodeRuneInString(name[i:])
		if needs(r) {
			for _, c := range []byte(name[i : i+size]) {
				fmt.Fprintf(&b, "%%%02X", c)
			}
		} else {
			b.WriteString(name[i : i+size])
		}
		i += size
	}
	return b.String()
}

func checkKeyName(keyName string) error {
	if keyName == "" || len(keyName) > MaxKeyNameLen {
		return fmt.Errorf("%w: key name must be 1 to %d bytes, got %d", ErrBadKey, MaxKeyNameLen, len(keyName))
	}
	return nil
}

// Witness is a signer a reader knows: a member authority or a witness, by
// its authority name (not escaped: KeyName is applied here) and public key.
type Witness struct {
	Name string
	Key  authority.PublicKey
}

// VerifierKey is w's verifier key in x/mod's text form,
// "<key name>+<key ID hex>+<base64 of type || public key>" (NoteType), for
// tools outside fednode (x/mod's note.NewVerifier reads the Ed25519 ones).
func VerifierKey(w Witness) (string, error) {
	vkey, err := verifierKey(w)
	if err != nil {
		return "", fmt.Errorf("tlog: %w", err)
	}
	return vkey, nil
}

// checkWitness checks w's key and returns its escaped key name.
func checkWitness(w Witness) (string, error) {
	if NoteType(w.Key.Alg) == nil || w.Key.Validate() != nil {
		return "", fmt.Errorf("witness %q: %w: want a well-formed %v, %v or %v key, got %d bytes of %v", abbrev(w.Name), ErrBadKey, authority.AlgEd25519, authority.AlgMLDSA65, authority.AlgHybrid, len(w.Key.Key), w.Key.Alg)
	}
	name := KeyName(w.Name)
	if err := checkKeyName(name); err != nil {
		return "", fmt.Errorf("witness %q: %w", abbrev(w.Name), err)
	}
	return name, nil
}

func verifierKey(w Witness) (string, error) {
	name, err := checkWitness(w)
	if err != nil {
		return "", err
	}
	if w.Key.Alg == authority.AlgEd25519 {
		vkey, err := note.NewEd25519VerifierKey(name, ed25519.PublicKey(w.Key.Key))
		if err != nil {
			return "", fmt.Errorf("witness %q: %w: %w", abbrev(w.Name), ErrBadKey, err)
		}
		return vkey, nil
	}
	return fmt.Sprintf("%s+%08x+%s", name, keyHash(name, w.Key), base64.StdEncoding.EncodeToString(append(NoteType(w.Key.Alg), w.Key.Key...))), nil
}

// Verifier is the note.Verifier of w.
func Verifier(w Witness) (note.Verifier, error) {
	v, err := verifier(w)
	if err != nil {
		return nil, fmt.Errorf("tlog: %w", err)
	}
	return v, nil
}

func verifier(w Witness) (note.Verifier, error) {
	if w.Key.Alg != authority.AlgEd25519 {
		name, err := checkWitness(w)
		if err != nil {
			return nil, err
		}
		return &keyVerifier{name: name, hash: keyHash(name, w.Key), key: w.Key}, nil
	}
	// Ed25519 goes through x/mod's own verifier, as it always did.
	vkey, err := verifierKey(w)
	if err != nil {
		return nil, err
	}
	v, err := note.NewVerifier(vkey)
	if err != nil {
		return nil, fmt.Errorf("witness %q: %w: %w", abbrev(w.Name), ErrBadKey, err)
	}
	return v, nil
}

// keyVerifier is a note.Verifier over an authority key of an algorithm x/mod
// does not know (ML-DSA-65, the hybrid).
type keyVerifier struct {
	name string
	hash uint32
	key  authority.PublicKey
}

func (v *keyVerifier) Name() string                { return v.name }
func (v *keyVerifier) KeyHash() uint32             { return v.hash }
func (v *keyVerifier) Verify(msg, sig []byte) bool { return v.key.VerifyNoteText(msg, sig) }

// signer is a note.Signer over an authority key.
type signer struct {
	name string // key name (escaped)
	hash uint32
	k    *authority.PrivateKey
}

func (s *signer) Name() string                    { return s.name }
func (s *signer) KeyHash() uint32                 { return s.hash }
func (s *signer) Sign(msg []byte) ([]byte, error) { return s.k.SignNoteText(msg) }

// Signer is a note.Signer that signs with k under the key name
// KeyName(name) and the key ID of NoteType(k.Alg()): Ed25519, ML-DSA-65 and
// hybrid keys all sign notes.
func Signer(name string, k *authority.PrivateKey) (note.Signer, error) {
	s, err := newSigner(name, k)
	if err != nil {
		return nil, fmt.Errorf("tlog: %w", err)
	}
	return s, nil
}

func newSigner(name string, k *authority.PrivateKey) (*signer, error) {
	if k == nil || NoteType(k.Alg()) == nil {
		return nil, fmt.Errorf("signer %q: %w: no key, or one of an algorithm that cannot sign notes", abbrev(name), ErrBadKey)
	}
	keyName := KeyName(name)
	if err := checkKeyName(keyName); err != nil {
		return nil, fmt.Errorf("signer %q: %w", abbrev(name), err)
	}
	return &signer{name: keyName, hash: keyHash(keyName, k.Public()), k: k}, nil
}

// SignCheckpoint returns the signed note of c with one signature, by k under
// the name of its authority.
func SignCheckpoint(c Checkpoint, name string, k *authority.PrivateKey) ([]byte, error) {
	if err := c.check(); err != nil {
		return nil, fmt.Errorf("tlog: sign checkpoint: %w", err)
	}
	s, err := newSigner(name, k)
	if err != nil {
		return nil, fmt.Errorf("tlog: sign checkpoint: %w", err)
	}
	msg, err := note.Sign(&note.Note{Text: string(c.Marshal())}, s)
	if err != nil {
		return nil, fmt.Errorf("tlog: sign checkpoint %v: %w", c, err)
	}
	return msg, nil
}

// Cosign adds k's signature, under the name of its authority, to a signed
// checkpoint note, keeping the other signature lines as they are (a previous
// signature by the same key is replaced). The body must be a well-formed
// checkpoint.
//
// WARNING: Cosign checks none of the existing signatures and no consistency:
// a witness first opens the note with OpenCheckpoint and verifies a
// consistency proof from the last checkpoint it cosigned, then cosigns.
func Cosign(noteText []byte, name string, k *authority.PrivateKey) ([]byte, error) {
	n, err := parseNote(noteText)
	if err != nil {
		return nil, fmt.Errorf("tlog: cosign: %w", err)
	}
	c, err := parseCheckpoint([]byte(n.Text))
	if err != nil {
		return nil, fmt.Errorf("tlog: cosign: %w", err)
	}
	s, err := newSigner(name, k)
	if err != nil {
		return nil, fmt.Errorf("tlog: cosign %v: %w", c, err)
	}
	if len(n.UnverifiedSigs) >= MaxSignatures {
		return nil, fmt.Errorf("tlog: cosign %v: %w: the note already has %d signatures, the most a note may carry", c, ErrMalformed, len(n.UnverifiedSigs))
	}
	msg, err := note.Sign(n, s)
	if err != nil {
		return nil, fmt.Errorf("tlog: cosign %v: %w", c, err)
	}
	if len(msg) > MaxNoteSize {
		return nil, fmt.Errorf("tlog: cosign %v: %w: the cosigned note would be %d bytes, over the %d-byte limit", c, ErrMalformed, len(msg), MaxNoteSize)
	}
	return msg, nil
}

// parseNote splits a signed note without verifying anything: every
// signature comes back in UnverifiedSigs, in the note's order.
func parseNote(noteText []byte) (*note.Note, error) {
	if len(noteText) > MaxNoteSize {
		return nil, fmt.Errorf("%w: note is %d bytes, over the %d-byte limit", ErrMalformed, len(noteText), MaxNoteSize)
	}
	_, err := note.Open(noteText, note.VerifierList())
	var unverified *note.UnverifiedNoteError
	if errors.As(err, &unverified) {
		return unverified.Note, nil
	}
	// With no known keys, any other outcome means the note does not parse.
	return nil, fmt.Errorf("%w: not a signed note: %w", ErrMalformed, err)
}

// OpenCheckpoint verifies a signed checkpoint note against the known signers
// and parses its body. It returns the names (Witness.Name) of the known
// signers whose signatures verified, in the note's order. Signatures from
// unknown keys are ignored; a known key's signature that fails refuses the
// note (ErrBadSignature), and so does a note with no known signature
// (ErrUnverified).
//
// WARNING: the caller must compare the returned Origin with the log it
// expects; a checkpoint of another log signed by the same keys verifies too.
func OpenCheckpoint(noteText []byte, known []Witness) (Checkpoint, []string, error) {
	c, names, err := openCheckpoint(noteText, known)
	if err != nil {
		return Checkpoint{}, nil, fmt.Errorf("tlog: open checkpoint: %w", err)
	}
	return c, names, nil
}

func openCheckpoint(noteText []byte, known []Witness) (Checkpoint, []string, error) {
	if len(noteText) > MaxNoteSize {
		return Checkpoint{}, nil, fmt.Errorf("%w: note is %d bytes, over the %d-byte limit", ErrMalformed, len(noteText), MaxNoteSize)
	}
	type keyRef struct {
		name string
		hash uint32
	}
	vs := make([]note.Verifier, 0, len(known))
	names := make(map[keyRef]string, len(known))
	keys := make(map[keyRef][]byte, len(known))
	for _, w := range known {
		v, err := verifier(w)
		if err != nil {
			return Checkpoint{}, nil, err
		}
		ref := keyRef{v.Name(), v.KeyHash()}
		if old, ok := keys[ref]; ok {
			if bytes.Equal(old, w.Key.Key) {
				continue // the same signer listed twice
			}
			return Checkpoint{}, nil, fmt.Errorf("%w: two known keys share the name %q and key ID %08x", ErrBadKey, ref.name, ref.hash)
		}
		keys[ref], names[ref] = w.Key.Key, w.Name
		vs = append(vs, v)
	}
	n, err := note.Open(noteText, note.VerifierList(vs...))
	if err != nil {
		var unverified *note.UnverifiedNoteError
		var invalid *note.InvalidSignatureError
		switch {
		case errors.As(err, &unverified):
			return Checkpoint{}, nil, fmt.Errorf("%w (%d signatures, none by the %d known signers)", ErrUnverified, len(unverified.Note.UnverifiedSigs), len(vs))
		case errors.As(err, &invalid):
			return Checkpoint{}, nil, fmt.Errorf("%w: the signature of %q (key ID %08x) does not verify", ErrBadSignature, names[keyRef{invalid.Name, invalid.Hash}], invalid.Hash)
		default:
			return Checkpoint{}, nil, fmt.Errorf("%w: not a signed note: %w", ErrMalformed, err)
		}
	}
	c, err := parseCheckpoint([]byte(n.Text))
	if err != nil {
		return Checkpoint{}, nil, err
	}
	signers := make([]string, 0, len(n.Sigs))
	for _, s := range n.Sigs {
		signers = append(signers, names[keyRef{s.Name, s.Hash}])
	}
	return c, signers, nil
}

// SplitViewEvidence is two signed checkpoints of one log at one size with
// different roots, exactly as they were received, so that anyone holding
// the signers' keys can check the claim offline (Verify).
type SplitViewEvidence struct {
	A, B []byte
}

// Equivocation is what split-view evidence proves.
type Equivocation struct {
	A, B               Checkpoint
	SignersA, SignersB []string // known signers of each note
	// Both are the signers who signed both roots: each of them signed two
	// incompatible views of the log, which no honest signer does.
	Both []string
}

// ErrNotSplitView: the two checkpoints do not conflict (other origin, other
// size, or the same root).
var ErrNotSplitView = errors.New("not a split view")

// Verify opens both notes against known and checks that they are a split
// view. An error means the evidence proves nothing.
func (e SplitViewEvidence) Verify(known []Witness) (Equivocation, error) {
	var q Equivocation
	var err error
	if q.A, q.SignersA, err = openCheckpoint(e.A, known); err != nil {
		return Equivocation{}, fmt.Errorf("tlog: split view, first note: %w", err)
	}
	if q.B, q.SignersB, err = openCheckpoint(e.B, known); err != nil {
		return Equivocation{}, fmt.Errorf("tlog: split view, second note: %w", err)
	}
	if !SplitView(q.A, q.B) {
		return Equivocation{}, fmt.Errorf("tlog: %w: %v and %v", ErrNotSplitView, q.A, q.B)
	}
	for _, s := range q.SignersA {
		if slices.Contains(q.SignersB, s) && !slices.Contains(q.Both, s) {
			q.Both = append(q.Both, s)
		}
	}
	return q, nil
}

// MergeSignatures returns note a with the signatures of note b that a lacks
// (by key name and hash), for two notes of the same body: how a witness
// collects cosignatures of one checkpoint arriving in separate notes. It
// verifies nothing; open the result with OpenCheckpoint.
func MergeSignatures(a, b []byte) ([]byte, error) {
	na, err := parseNote(a)
	if err != nil {
		return nil, fmt.Errorf("tlog: merge signatures: %w", err)
	}
	nb, err := parseNote(b)
	if err != nil {
		return nil, fmt.Errorf("tlog: merge signatures: %w", err)
	}
	if na.Text != nb.Text {
		return nil, fmt.Errorf("tlog: merge signatures: %w: the notes have different bodies", ErrMalformed)
	}
	type nameHash struct {
		name string
		hash uint32
	}
	have := map[nameHash]bool{}
	for _, s := range na.UnverifiedSigs {
		have[nameHash{s.Name, s.Hash}] = true
	}
	merged := &note.Note{Text: na.Text, UnverifiedSigs: append([]note.Signature(nil), na.UnverifiedSigs...)}
	for _, s := range nb.UnverifiedSigs {
		if !have[nameHash{s.Name, s.Hash}] {
			have[nameHash{s.Name, s.Hash}] = true
			merged.UnverifiedSigs = append(merged.UnverifiedSigs, s)
		}
	}
	if len(merged.UnverifiedSigs) > MaxSignatures {
		return nil, fmt.Errorf("tlog: merge signatures: %w: %d signatures, over %d", ErrMalformed, len(merged.UnverifiedSigs), MaxSignatures)
	}
	out, err := note.Sign(merged)
	if err != nil {
		return nil, fmt.Errorf("tlog: merge signatures: %w", err)
	}
	if len(out) > MaxNoteSize {
		return nil, fmt.Errorf("tlog: merge signatures: %w: %d bytes, over %d", ErrMalformed, len(out), MaxNoteSize)
	}
	return out, nil
}
