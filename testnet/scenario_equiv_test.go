package testnet

import (
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"
)

func TestParseGovernanceForms(t *testing.T) {
	const head = "authority a keys=3 threshold=2\nauthority b\n"
	tests := []struct {
		name string
		line string
		want any
	}{
		{name: "rotate", line: "rotate a", want: &RotateCmd{Auth: "a"}},
		{name: "rotate to a new set", line: "rotate a keys=5 threshold=3", want: &RotateCmd{Auth: "a", Keys: 5, Threshold: 3}},
		{name: "rotate threshold only", line: "rotate a threshold=1", want: &RotateCmd{Auth: "a", Threshold: 1}},
		{name: "equivocate", line: "equivocate b", want: &EquivocateCmd{Auth: "b"}},
		{name: "expect-evidence", line: "expect-evidence b", want: &ExpectEvidenceCmd{Auth: "b", On: "all"}},
		{name: "expect-evidence on one node", line: "expect-evidence b on=a within=2s", want: &ExpectEvidenceCmd{Auth: "b", On: "a", Within: 2 * time.Second}},
		{name: "credential by the retired keys", line: "credential c issuer=a subject=s signed-by=old",
			want: &CredentialCmd{Name: "c", Issuer: "a", Subject: "s", SignedBy: SignedByOld}},
		{name: "credential below the threshold", line: "credential c issuer=a subject=s signatures=1 signed-by=current",
			want: &CredentialCmd{Name: "c", Issuer: "a", Subject: "s", SignedBy: SignedByCurrent, Signatures: 1}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			sc, err := Parse("t", []byte(head+tt.line))
			if err != nil {
				t.Fatal(err)
			}
			if got := sc.Steps[2].Cmd; !reflect.DeepEqual(got, tt.want) {
				t.Fatalf("got %#v\nwant %#v", got, tt.want)
			}
		})
	}
}

func TestParseGovernanceErrors(t *testing.T) {
	const head = "authority a\n"
	tests := []struct {
		name string
		src  string
		frag string
	}{
		{name: "rotate threshold over keys", src: "rotate a keys=2 threshold=3", frag: "threshold= exceeds keys="},
		{name: "rotate unknown authority", src: "rotate z", frag: `AUTH "z": no authority named "z"`},
		{name: "rotate zero keys", src: "rotate a keys=0", frag: "bad keys="},
		{name: "equivocate needs an authority", src: "equivocate", frag: "missing AUTH"},
		{name: "expect-evidence unknown node", src: "expect-evidence a on=z", frag: `on= "z"`},
		{name: "signed-by unknown", src: "credential c issuer=a subject=s signed-by=new", frag: `bad signed-by= "new"`},
		{name: "signed-by with from", src: "credential p issuer=a subject=s holder-key=yes\ncredential c issuer=a subject=t from=p signed-by=old", frag: "do not go with it"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Parse("t", []byte(head+tt.src))
			var pe *ParseError
			if !errors.As(err, &pe) || !strings.Contains(pe.Msg, tt.frag) {
				t.Fatalf("got %v, want a ParseError containing %q", err, tt.frag)
			}
		})
	}
}
