package consensus

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log"
	"log/slog"
	"net"
	"strings"
	"sync/atomic"

	"github.com/hashicorp/go-hclog"
)

// hclogAdapter is an hclog.Logger that forwards raft's structured logs to
// slog, keeping their key-value pairs as attributes.
//
// Its own level filters first (raft is chatty at Info: every election,
// every snapshot), then the slog handler's.
type hclogAdapter struct {
	l     *slog.Logger
	name  string
	level *atomic.Int32 // an hclog.Level; shared by all derived loggers, as in hclog
	args  []any         // implied args, for ImpliedArgs
}

var _ hclog.Logger = (*hclogAdapter)(nil)

func newHCLog(l *slog.Logger, level slog.Leveler) *hclogAdapter {
	lv := new(atomic.Int32)
	lv.Store(int32(hclogLevel(level.Level())))
	return &hclogAdapter{l: l, name: "raft", level: lv}
}

// hclogLevel maps a slog threshold to the hclog level that lets through the
// same messages.
func hclogLevel(l slog.Level) hclog.Level {
	switch {
	case l <= slog.LevelDebug-4:
		return hclog.Trace
	case l <= slog.LevelDebug:
		return hclog.Debug
	case l <= slog.LevelInfo:
		return hclog.Info
	case l <= slog.LevelWarn:
		return hclog.Warn
	default:
		return hclog.Error
	}
}

func slogLevel(l hclog.Level) slog.Level {
	switch l {
	case hclog.Trace:
		return slog.LevelDebug - 4
	case hclog.Debug:
		return slog.LevelDebug
	case hclog.Warn:
		return slog.LevelWarn
	case hclog.Error:
		return slog.LevelError
	default:
		return slog.LevelInfo
	}
}

func (a *hclogAdapter) enabled(l hclog.Level) bool {
	min := hclog.Level(a.level.Load())
	return min != hclog.Off && l >= min
}

func (a *hclogAdapter) Log(level hclog.Level, msg string, args ...any) {
	if level == hclog.NoLevel {
		level = hclog.Info
	}
	if level >= hclog.Warn && closedByUs(args) {
		// Raft reports a connection our stream layer closed (on Shutdown)
		// as an error; it is expected, so keep it out of the warnings.
		level = hclog.Debug
	}
	if !a.enabled(level) {
		return
	}
	sl := slogLevel(level)
	ctx := context.Background()
	if !a.l.Enabled(ctx, sl) {
		return
	}
	a.l.LogAttrs(ctx, sl, a.name+": "+msg, attrs(args)...)
}

// closedByUs reports whether an argument is an error on a connection closed
// locally.
func closedByUs(args []any) bool {
	for _, a := range args {
		if err, ok := a.(error); ok && errors.Is(err, net.ErrClosed) {
			return true
		}
	}
	return false
}

// attrs turns hclog's alternating key-value arguments into slog attributes.
// hclog tolerates a trailing value without a key and hclog.Format values;
// slog would print those as !BADKEY.
func attrs(args []any) []slog.Attr {
	out := make([]slog.Attr, 0, (len(args)+1)/2)
	for i := 0; i < len(args); i += 2 {
		if i+1 == len(args) {
			out = append(out, slog.Any("extra", value(args[i])))
			break
		}
		key, ok := args[i].(string)
		if !ok {
			key = fmt.Sprint(args[i])
		}
		out = append(out, slog.Any(key, value(args[i+1])))
	}
	return out
}

func value(v any) any {
	if f, ok := v.(hclog.Format); ok && len(f) > 0 {
		if s, ok := f[0].(string); ok {
			return fmt.Sprintf(s, f[1:]...)
		}
		return fmt.Sprint(f...)
	}
	return v
}

func (a *hclogAdapter) Trace(msg string, args ...any) { a.Log(hclog.Trace, msg, args...) }
func (a *hclogAdapter) Debug(msg string, args ...any) { a.Log(hclog.Debug, msg, args...) }
func (a *hclogAdapter) Info(msg string, args ...any)  { a.Log(hclog.Info, msg, args...) }
func (a *hclogAdapter) Warn(msg string, args ...any)  { a.Log(hclog.Warn, msg, args...) }
func (a *hclogAdapter) Error(msg string, args ...any) { a.Log(hclog.Error, msg, args...) }

func (a *hclogAdapter) IsTrace() bool { return a.enabled(hclog.Trace) }
func (a *hclogAdapter) IsDebug() bool { return a.enabled(hclog.Debug) }
func (a *hclogAdapter) IsInfo() bool  { return a.enabled(hclog.Info) }
func (a *hclogAdapter) IsWarn() bool  { return a.enabled(hclog.Warn) }
func (a *hclogAdapter) IsError() bool { return a.enabled(hclog.Error) }

func (a *hclogAdapter) ImpliedArgs() []any { return a.args }

func (a *hclogAdapter) With(args ...any) hclog.Logger {
	c := *a
	c.args = append(append([]any(nil), a.args...), args...)
	c.l = a.l.With(attrsAny(args)...)
	return &c
}

func attrsAny(args []any) []any {
	as := attrs(args)
	out := make([]any, len(as))
	for i, at := range as {
		out[i] = at
	}
	return out
}

func (a *hclogAdapter) Name() string { return a.name }

func (a *hclogAdapter) Named(name string) hclog.Logger {
	c := *a
	if c.name == "" {
		c.name = name
	} else {
		c.name = c.name + "." + name
	}
	return &c
}

func (a *hclogAdapter) ResetNamed(name string) hclog.Logger {
	c := *a
	c.name = name
	return &c
}

func (a *hclogAdapter) SetLevel(level hclog.Level) { a.level.Store(int32(level)) }
func (a *hclogAdapter) GetLevel() hclog.Level      { return hclog.Level(a.level.Load()) }

func (a *hclogAdapter) StandardLogger(opts *hclog.StandardLoggerOptions) *log.Logger {
	return log.New(a.StandardWriter(opts), "", 0)
}

func (a *hclogAdapter) StandardWriter(opts *hclog.StandardLoggerOptions) io.Writer {
	level := hclog.Info
	if opts != nil && opts.ForceLevel != hclog.NoLevel {
		level = opts.ForceLevel
	}
	return lineWriter{a: a, level: level}
}

// lineWriter logs each write (one line of a standard logger) at a level.
type lineWriter struct {
	a     *hclogAdapter
	level hclog.Level
}

func (w lineWriter) Write(p []byte) (int, error) {
	w.a.Log(w.level, strings.TrimRight(string(p), "\n"))
	return len(p), nil
}
