package consensus

import (
	"errors"
	"fmt"
)

// CommandType selects the Handler that applies a Command. Values are part of
// the Raft entry wire format: once assigned, a type keeps its meaning forever.
//
// Type 0 is reserved and never registered, so a zero Command is applied as
// an unknown command instead of being dispatched.
type CommandType uint8

// MaxCommandSize bounds the encoded size of one Command that Apply accepts.
// Every entry is held in memory by every node and sent to every follower, so
// a bulky command costs the whole cluster; 1 MiB is far above any batch of
// declarations a node proposes at once.
const MaxCommandSize = 1 << 20

// Command is the payload of one Raft log entry.
//
// Wire format (a Raft entry: it is kept in every node's log and replayed
// after restarts, so it must never change incompatibly): one byte of
// CommandType followed by Body verbatim, with no length prefix, since the
// entry's own length delimits Body. Body's encoding is owned by the handler
// registered for Type.
type Command struct {
	Type CommandType
	Body []byte
}

// ErrBadCommand is returned by DecodeCommand for bytes that are not a
// Command.
var ErrBadCommand = errors.New("consensus: malformed command")

// Encode returns the wire form of c: a fresh slice the caller owns.
func (c Command) Encode() []byte {
	b := make([]byte, 1+len(c.Body))
	b[0] = byte(c.Type)
	copy(b[1:], c.Body)
	return b
}

// DecodeCommand parses the wire form of a Command. The returned Body aliases
// b (no copy: the FSM decodes every entry), so the caller must not modify b
// while Body is in use.
func DecodeCommand(b []byte) (Command, error) {
	if len(b) == 0 {
		return Command{}, fmt.Errorf("%w: empty entry has no type byte", ErrBadCommand)
	}
	return Command{Type: CommandType(b[0]), Body: b[1:]}, nil
}
