package gossip

import (
	"crypto/rand"
	"fmt"

	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/peer"
)

// GenerateIdentity returns a new libp2p Ed25519 private key, marshalled with
// crypto.MarshalPrivateKey (the libp2p protobuf key encoding). The bytes are
// secret: whoever holds them can speak as this peer.
func GenerateIdentity() ([]byte, error) {
	sk, _, err := crypto.GenerateEd25519Key(rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("gossip: generate identity: %w", err)
	}
	b, err := crypto.MarshalPrivateKey(sk)
	if err != nil {
		return nil, fmt.Errorf("gossip: marshal identity: %w", err)
	}
	return b, nil
}

// PeerIDOf returns the peer ID string (base58 multihash, "12D3KooW..." for
// Ed25519) of a marshalled identity, as [Host.PeerID] would report it.
func PeerIDOf(identity []byte) (string, error) {
	sk, err := parseIdentity(identity)
	if err != nil {
		return "", err
	}
	id, err := peer.IDFromPrivateKey(sk)
	if err != nil {
		return "", fmt.Errorf("gossip: peer ID of identity: %w", err)
	}
	return id.String(), nil
}

func parseIdentity(identity []byte) (crypto.PrivKey, error) {
	if len(identity) == 0 {
		return nil, fmt.Errorf("%w: empty; create one with GenerateIdentity", ErrBadIdentity)
	}
	if len(identity) > maxIdentitySize {
		return nil, fmt.Errorf("%w: %d bytes, more than %d", ErrBadIdentity, len(identity), maxIdentitySize)
	}
	sk, err := crypto.UnmarshalPrivateKey(identity)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrBadIdentity, err)
	}
	return sk, nil
}

// maxIdentitySize bounds the key we parse; an Ed25519 key marshals to 68
// bytes and even an RSA-4096 key fits well within this.
const maxIdentitySize = 16 << 10
