package config

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/fsnotify/fsnotify"
)

// Watcher reloads a config file when it changes. A mounted ConfigMap is
// updated by swapping a symlink in the file's directory, so the directory is
// watched, and the file is also re-read on a timer in case an event is missed.
// Only content changes count: touching the file does nothing.
type Watcher struct {
	path     string
	interval time.Duration
	settle   time.Duration
	// OnReload is called from the watcher's goroutine with the new config,
	// or with the error that kept the last good one in force. It is called
	// once per distinct content, so a bad file is reported once, not on every
	// poll.
	OnReload func(*Config, error)

	last []byte
}

// NewWatcher returns a watcher for the config file at path whose content,
// already loaded, is initial.
func NewWatcher(path string, initial []byte, onReload func(*Config, error)) *Watcher {
	return &Watcher{path: path, interval: 10 * time.Second, settle: 50 * time.Millisecond, OnReload: onReload, last: initial}
}

// Start watches until ctx is done.
func (w *Watcher) Start(ctx context.Context) error {
	fw, err := fsnotify.NewWatcher()
	if err != nil {
		return fmt.Errorf("watching config: %w", err)
	}
	defer fw.Close()
	if err := fw.Add(filepath.Dir(w.path)); err != nil {
		return fmt.Errorf("watching config directory: %w", err)
	}
	ticker := time.NewTicker(w.interval)
	defer ticker.Stop()
	// Editors and the kubelet write in several steps; wait for them to settle.
	debounce := time.NewTimer(0)
	<-debounce.C
	for {
		select {
		case <-ctx.Done():
			return nil
		case _, ok := <-fw.Events:
			if !ok {
				return nil
			}
			debounce.Reset(100 * time.Millisecond)
		case err, ok := <-fw.Errors:
			if !ok {
				return nil
			}
			w.OnReload(nil, fmt.Errorf("watching config: %w", err))
		case <-debounce.C:
			w.check()
		case <-ticker.C:
			w.check()
		}
	}
}

// check re-reads the file and reports a change.
func (w *Watcher) check() {
	data, err := w.readSettled()
	if err != nil {
		if w.last != nil {
			w.last = nil
			w.OnReload(nil, fmt.Errorf("reading config: %w", err))
		}
		return
	}
	if w.last != nil && bytes.Equal(data, w.last) {
		return
	}
	w.last = data
	w.OnReload(Parse(w.path, data))
}

// readSettled reads the file until two reads a moment apart agree. An editor
// or `cp` writes in several steps (truncate, then write); parsing a read
// taken in between would report a config that never existed as invalid.
func (w *Watcher) readSettled() ([]byte, error) {
	data, err := os.ReadFile(w.path)
	if err != nil || bytes.Equal(data, w.last) {
		return data, err
	}
	for range 10 {
		time.Sleep(w.settle)
		again, err := os.ReadFile(w.path)
		if err != nil {
			return nil, err
		}
		if bytes.Equal(again, data) {
			return data, nil
		}
		data = again
	}
	return data, nil
}
