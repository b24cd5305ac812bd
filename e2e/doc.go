// Package e2e holds podguard's end-to-end tests. They run against a real
// control plane started by package framework and are built only with the e2e
// build tag:
//
//	go test -tags e2e -count=1 -v ./e2e/
//
// The control-plane binaries must be in bin/ (`make tools`), and tests that
// run podguard need bin/podguard.
package e2e
