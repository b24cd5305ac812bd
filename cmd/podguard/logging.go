package main

import (
	"io"
	"os"

	"github.com/go-logr/logr"
	"github.com/go-logr/zapr"
	uberzap "go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"
)

// newLogger is the logger the --zap-* flags describe, built by
// controller-runtime, less the sampler its production defaults wrap around
// it (the first 100 lines per second of each message, then 1 in 100).
// podguard logs every admission decision, and a log that drops decisions
// under load is no record of what was decided, so nothing is sampled.
//
// controller-runtime adds the sampler last, around the core it built from
// the flags: a first WrapCore sees that core, and the logger is built on it
// with the same stack trace level.
func newLogger(o *zap.Options) logr.Logger {
	var core zapcore.Core
	opts := *o
	opts.ZapOpts = append([]uberzap.Option{uberzap.WrapCore(func(c zapcore.Core) zapcore.Core {
		if core == nil {
			core = c
		}
		return c
	})}, o.ZapOpts...)
	sampled := zap.NewRaw(zap.UseFlagOptions(&opts))
	if core == nil || opts.Development {
		// Development mode does not sample.
		return zapr.NewLogger(sampled)
	}
	stack := opts.StacktraceLevel
	if stack == nil {
		stack = zapcore.ErrorLevel
	}
	var sink io.Writer = os.Stderr
	if opts.DestWriter != nil {
		sink = opts.DestWriter
	}
	base := []uberzap.Option{uberzap.AddStacktrace(stack), uberzap.ErrorOutput(zapcore.AddSync(sink))}
	return zapr.NewLogger(uberzap.New(core, append(base, o.ZapOpts...)...))
}
