package tlog_test

import (
	"bytes"
	"errors"
	"testing"

	"github.com/fednode/fednode/tlog"
)

func TestMergeSignatures(t *testing.T) {
	ka, kb, kc := fixedKey(t, 1), fixedKey(t, 2), fixedKey(t, 3)
	wa, wb, wc := tlog.Witness{Name: "alpha", Key: ka.Public()}, tlog.Witness{Name: "beta", Key: kb.Public()}, tlog.Witness{Name: "gamma", Key: kc.Public()}
	c := tlog.Checkpoint{Origin: tlog.Origin("test"), Size: 7, Root: bytes.Repeat([]byte{7}, tlog.HashSize)}
	a, err := tlog.SignCheckpoint(c, "alpha", ka)
	if err != nil {
		t.Fatal(err)
	}
	ab, err := tlog.Cosign(a, "beta", kb)
	if err != nil {
		t.Fatal(err)
	}
	ac, err := tlog.Cosign(a, "gamma", kc)
	if err != nil {
		t.Fatal(err)
	}
	m, err := tlog.MergeSignatures(ab, ac)
	if err != nil {
		t.Fatal(err)
	}
	_, names, err := tlog.OpenCheckpoint(m, []tlog.Witness{wa, wb, wc})
	if err != nil {
		t.Fatal(err)
	}
	if len(names) != 3 {
		t.Fatalf("merged note signed by %v, want alpha, beta and gamma", names)
	}
	again, err := tlog.MergeSignatures(m, ab)
	if err != nil || !bytes.Equal(again, m) {
		t.Fatalf("merging what a note already has changed it: %v", err)
	}
	other, err := tlog.SignCheckpoint(tlog.Checkpoint{Origin: c.Origin, Size: 7, Root: bytes.Repeat([]byte{8}, tlog.HashSize)}, "beta", kb)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tlog.MergeSignatures(a, other); !errors.Is(err, tlog.ErrMalformed) {
		t.Fatalf("merging notes of different bodies: %v, want tlog.ErrMalformed", err)
	}
}
