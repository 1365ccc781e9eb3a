package authority

import (
	"errors"
	"fmt"
	"unicode/utf8"
)

// SignNoteText signs the text of a C2SP signed note (c2sp.org/signed-note) as
// is, without a COSE envelope: it is how a transparency-log checkpoint is
// signed with an authority key (package tlog).
//
// It refuses anything that is not note text: empty input, input not ending in a
// newline, invalid UTF-8, or any ASCII control character other than newline.
// That is the domain separation between the two things a root key signs: a
// COSE Sig_structure always begins with the byte 0x84 (a CBOR array of four),
// which can never start valid UTF-8, so no note signature can ever be replayed
// as a declaration signature nor the other way round, whoever chooses the bytes.
func (k *PrivateKey) SignNoteText(text []byte) ([]byte, error) {
	if err := checkNoteText(text); err != nil {
		return nil, fmt.Errorf("authority: sign note: %w", err)
	}
	return k.sign(text)
}

func checkNoteText(text []byte) error {
	if len(text) == 0 || text[len(text)-1] != '\n' {
		return errors.New("note text must be non-empty and end in a newline")
	}
	for i := 0; i < len(text); {
		r, size := utf8.DecodeRune(text[i:])
		if r == utf8.RuneError && size == 1 {
			return fmt.Errorf("note text is not valid UTF-8 at byte %d", i)
		}
		if r < 0x20 && r != '\n' {
			return fmt.Errorf("note text has control character %#x at byte %d", r, i)
		}
		i += size
	}
	return nil
}

// VerifyNoteText reports whether sig is k's signature of note text, as
// SignNoteText makes it. Text that SignNoteText would refuse never
// verifies, so a declaration signature can never pass for a note's.
func (k PublicKey) VerifyNoteText(text, sig []byte) bool {
	return checkNoteText(text) == nil && k.verify(text, sig)
}
