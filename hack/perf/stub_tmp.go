package main

import (
	"context"
	"errors"
	"time"
)

// measure runs the phases; only -capture-only is there yet.
func measure(ctx context.Context, e *env, o options, started time.Time) error {
	return errors.New("only -capture-only is implemented so far")
}
