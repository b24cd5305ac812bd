package main

import (
	"errors"
	"flag"
	"fmt"
	"io"

	"github.com/podguard/podguard/config"
)

// configCommand runs `podguard config validate FILE...`.
func configCommand(args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 || args[0] != "validate" {
		return usageError("usage: podguard config validate FILE...")
	}
	fs := flag.NewFlagSet("config validate", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprintln(stderr, "Usage: podguard config validate FILE...\n\nChecks podguard config files strictly: unknown fields, wrong types and invalid\nsettings are reported with their field paths. Exits 1 if any file is invalid.")
	}
	if err := fs.Parse(args[1:]); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return err
		}
		return &exitError{code: 2}
	}
	if fs.NArg() == 0 {
		return usageError("config validate needs at least one FILE")
	}
	failed := 0
	for _, path := range fs.Args() {
		if _, err := config.Load(path); err != nil {
			fmt.Fprintln(stdout, err)
			failed++
			continue
		}
		fmt.Fprintf(stdout, "%s: valid\n", path)
	}
	if failed > 0 {
		return &exitError{code: 1}
	}
	return nil
}
