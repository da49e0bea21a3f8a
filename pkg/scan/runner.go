package scan

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/ds01-project/ds01/pkg/inventory"
)

// source is one thing a scan asks (the Docker engine, NVML, the /proc
// device scan): its name in the inventory, its budget, and how loudly its
// failure is logged.
type source struct {
	name   string
	budget time.Duration
	// failLevel is the level of the log line a failure gets: a missing
	// GPU driver is the normal state of a machine without GPUs, not a
	// warning.
	failLevel slog.Level
}

// outcome is what one source answered, and how it fared.
type outcome[T any] struct {
	value  T
	status inventory.SourceStatus
}

// answer is what a source's function returns: its value, a warning (what
// it could not see) and an error (it could not answer).
type answer[T any] struct {
	value   T
	warning string
	err     error
	// took is how long the source ran.
	took time.Duration
}

// start runs f for src in a goroutine of its own, under src's budget, and
// returns a function that waits for the outcome.
//
// A source that overruns its budget is abandoned: NVML's cgo calls cannot
// be interrupted, so its goroutine may run on (the process exits soon
// after), but what it returns then is dropped and never reaches the scan.
// A panic in a source costs that source, not the scan. Either way the
// outcome records the source's duration, and its error.
func start[T any](ctx context.Context, s *Scanner, src source, f func(context.Context) (T, string, error)) func() outcome[T] {
	began := s.clock()
	ctx, cancel := context.WithTimeout(ctx, src.budget)
	done := make(chan answer[T], 1)
	go func() {
		defer func() {
			if p := recover(); p != nil {
				s.log.Error("source panicked", "source", src.name, "panic", p)
				done <- answer[T]{err: fmt.Errorf("internal error: %v", p), took: s.clock().Sub(began)}
			}
		}()
		v, warning, err := f(ctx)
		done <- answer[T]{value: v, warning: warning, err: err, took: s.clock().Sub(began)}
	}()
	return func() outcome[T] {
		defer cancel()
		overran := func() answer[T] {
			took := s.clock().Sub(began)
			err := fmt.Errorf("timed out after %v: %w", took.Round(time.Millisecond), ctx.Err())
			if errors.Is(ctx.Err(), context.Canceled) {
				err = fmt.Errorf("scan cancelled: %w", ctx.Err())
			}
			return answer[T]{err: err, took: took}
		}
		// Sources are waited for one after another: one that answered
		// within its budget counts, however long another kept the scan.
		var a answer[T]
		select {
		case a = <-done:
			if a.took > src.budget && a.err == nil {
				a = answer[T]{err: fmt.Errorf("answered after %v, past its budget of %v", a.took.Round(time.Millisecond), src.budget), took: a.took}
			}
		default:
			select {
			case a = <-done:
			case <-ctx.Done():
				a = overran()
			}
		}
		o := outcome[T]{status: inventory.SourceStatus{
			OK: a.err == nil, Warning: a.warning, DurationMS: a.took.Milliseconds(),
		}}
		if a.err != nil {
			o.status.Error = a.err.Error()
			// The message names the source, so that a journal is read
			// with grep: "docker source unavailable".
			s.log.Log(context.Background(), src.failLevel, src.name+" source unavailable", "source", src.name, "err", a.err)
			return o
		}
		o.value = a.value
		s.log.Debug("source answered", "source", src.name, "duration_ms", o.status.DurationMS)
		return o
	}
}
