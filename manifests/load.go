// Package manifests reads the Kubernetes manifests `podguard check` and
// `podguard mutate` are given: files, folders, stdin, and what `helm
// template` or `kustomize build` print, as multi-document YAML, JSON, JSON
// streams or Lists.
//
// The bytes are read as kubectl create and apply read them, so that what
// kubectl accepts podguard reads the same way, and what it rejects is an
// error here too (see Parse); what kubectl passes over in silence but was
// likely not meant, such as a key set twice, is a Warning. Kinds client-go
// knows are then decoded strictly into its types, as the API server's
// strict field validation does, so that a typo in a field name is an error
// that names the file, the line and the field, rather than a setting the
// check silently ignores. Every problem is reported, and none stops the
// rest of the input from being read.
package manifests

import (
	"errors"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
)

// stdinPath is the path that stands for standard input.
const stdinPath = "-"

var (
	errStdinTwice = errors.New("standard input given more than once")
	errNoStdin    = errors.New("no standard input to read")
	errEmptyPath  = errors.New("an empty path is neither a file nor a folder")
)

// Load reads every path: a file, a folder (walked recursively, taking
// *.yaml, *.yml and *.json, in lexical order, skipping hidden files and
// folders), or "-" for stdin, which is read only then, and at most once. A
// file named explicitly is read whatever its extension (so that
// `-f <(helm template ...)` works).
//
// Each file is read as kubectl reads it (see Parse). Load returns every
// document it could read, in input order, the warnings about them, and one
// *Error per input it could not read or per document (or List item) it
// could not parse; a bad file does not stop the others. A folder with no
// manifests, or an empty file, yields nothing and no error.
func Load(paths []string, stdin io.Reader) ([]Document, []Warning, []error) {
	inputs := expand(paths)
	results := make([]inputResult, len(inputs))
	// Files are read and parsed on every core; Parse also spreads the
	// documents of a large file over them.
	sem := make(chan struct{}, runtime.GOMAXPROCS(0))
	var wg sync.WaitGroup
	for i, in := range inputs {
		if in.err != nil {
			results[i].errs = []error{in.err}
			continue
		}
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			results[i] = load(in, stdin)
		})
	}
	wg.Wait()
	var (
		docs  []Document
		warns []Warning
		errs  []error
	)
	for _, r := range results {
		docs = append(docs, r.docs...)
		warns = append(warns, r.warns...)
		errs = append(errs, r.errs...)
	}
	return docs, warns, errs
}

// input is a file to read, stdin, or a path that could not be used.
type input struct {
	path string
	err  *Error
}

type inputResult struct {
	docs  []Document
	warns []Warning
	errs  []error
}

// expand turns the paths given into the files to read, in order.
func expand(paths []string) []input {
	var inputs []input
	sawStdin := false
	for _, p := range paths {
		if p == stdinPath {
			if sawStdin {
				inputs = append(inputs, input{err: &Error{File: p, Err: errStdinTwice}})
				continue
			}
			sawStdin = true
			inputs = append(inputs, input{path: p})
			continue
		}
		fi, err := os.Stat(p)
		switch {
		case p == "":
			inputs = append(inputs, input{err: &Error{Err: errEmptyPath}})
		case err != nil:
			inputs = append(inputs, input{err: fileError(p, err)})
		case fi.IsDir():
			inputs = append(inputs, walk(p)...)
		default:
			inputs = append(inputs, input{path: p})
		}
	}
	return inputs
}

// walk lists the manifests under root in lexical order. Symbolic links to
// files are followed, links to folders are not (they could loop).
func walk(root string) []input {
	var inputs []input
	start := root
	if fi, err := os.Lstat(root); err == nil && fi.Mode()&fs.ModeSymlink != 0 {
		// WalkDir does not follow a root that is a link; with a trailing
		// separator, the system does. Paths found are still joined with
		// root as given.
		start = root + string(filepath.Separator)
	}
	_ = filepath.WalkDir(start, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			inputs = append(inputs, input{err: fileError(path, err)})
			return nil
		}
		if path != start && strings.HasPrefix(d.Name(), ".") {
			if d.IsDir() {
				return filepath.SkipDir
			}
			return nil
		}
		if d.IsDir() || !isManifestName(d.Name()) {
			return nil
		}
		if d.Type()&fs.ModeSymlink != 0 {
			fi, err := os.Stat(path)
			if err != nil {
				inputs = append(inputs, input{err: fileError(path, err)})
				return nil
			}
			if !fi.Mode().IsRegular() {
				return nil
			}
		} else if !d.Type().IsRegular() {
			return nil
		}
		inputs = append(inputs, input{path: path})
		return nil
	})
	return inputs
}

func isManifestName(name string) bool {
	switch strings.ToLower(filepath.Ext(name)) {
	case ".yaml", ".yml", ".json":
		return true
	}
	return false
}

// load reads and parses one file, or stdin.
func load(in input, stdin io.Reader) inputResult {
	var (
		data []byte
		err  error
	)
	if in.path == stdinPath {
		if stdin == nil {
			return inputResult{errs: []error{&Error{File: in.path, Err: errNoStdin}}}
		}
		data, err = readAll(stdin, 0)
	} else {
		data, err = readFile(in.path)
	}
	if err != nil {
		return inputResult{errs: []error{fileError(in.path, err)}}
	}
	docs, warns, errs := Parse(in.path, data)
	return inputResult{docs: docs, warns: warns, errs: errs}
}

func readFile(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, err
	}
	var size int64
	if fi.Mode().IsRegular() {
		// Refuse before reading; a pipe (-f <(helm template ...)) has no
		// size, and is cut off as it is read.
		if fi.Size() > maxFileSize {
			return nil, tooLarge()
		}
		size = fi.Size()
	}
	return readAll(f, size)
}

// readAll reads r up to maxFileSize, and fails beyond. It never holds more
// than the limit: the buffer doubles as it fills (from size, when the input's
// size is known), but its capacity is capped at maxFileSize+1, so an endless
// input (/dev/zero on stdin) allocates about twice the limit in all, and
// holds at most 1.5 times it at once, not the several times a bytes.Buffer's
// doubling would reach.
func readAll(r io.Reader, size int64) ([]byte, error) {
	limit := maxFileSize + 1
	buf := make([]byte, 0, min(max(size+1, 64<<10), limit))
	for {
		if int64(len(buf)) == int64(cap(buf)) {
			if int64(len(buf)) >= limit {
				return nil, tooLarge()
			}
			next := 2 * int64(cap(buf))
			if next >= maxFileSize { // one more byte than the limit tells a larger input
				next = limit
			}
			grown := make([]byte, len(buf), next)
			copy(grown, buf)
			buf = grown
		}
		n, err := r.Read(buf[len(buf):cap(buf)])
		buf = buf[:len(buf)+n]
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, err
		}
	}
	if int64(len(buf)) > maxFileSize {
		return nil, tooLarge()
	}
	return buf, nil
}

// fileError reports a path that could not be read, without Go's "open
// PATH:" prefix: "deploy/x.yaml: permission denied".
func fileError(path string, err error) *Error {
	var pe *fs.PathError
	if errors.As(err, &pe) {
		err = pe.Err
	}
	return &Error{File: path, Err: err}
}
