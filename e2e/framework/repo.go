package framework

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strings"
)

// ModulePath is the module path of the repository the framework belongs to.
const ModulePath = "github.com/podguard/podguard"

// RepoRoot returns the root of the podguard repository: the nearest directory
// at or above the working directory whose go.mod declares [ModulePath]. When
// the working directory is outside the repository, it searches upwards from
// this source file instead.
func RepoRoot() (string, error) {
	wd, err := os.Getwd()
	if err != nil {
		return "", fmt.Errorf("getting working directory: %w", err)
	}
	root, err := findModuleRoot(wd)
	if err == nil {
		return root, nil
	}
	if _, file, _, ok := runtime.Caller(0); ok {
		if root, err2 := findModuleRoot(filepath.Dir(file)); err2 == nil {
			return root, nil
		}
	}
	return "", err
}

// findModuleRoot walks up from dir to the directory whose go.mod declares
// ModulePath. Nested modules, such as hack/tools, are skipped.
func findModuleRoot(dir string) (string, error) {
	dir, err := filepath.Abs(dir)
	if err != nil {
		return "", fmt.Errorf("resolving %s: %w", dir, err)
	}
	for start := dir; ; {
		data, err := os.ReadFile(filepath.Join(dir, "go.mod"))
		switch {
		case err == nil:
			if modulePath(data) == ModulePath {
				return dir, nil
			}
		case !errors.Is(err, os.ErrNotExist):
			return "", fmt.Errorf("reading go.mod: %w", err)
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", fmt.Errorf("no go.mod for module %s in %s or any parent directory", ModulePath, start)
		}
		dir = parent
	}
}

// modulePath returns the path on the module line of a go.mod file.
func modulePath(gomod []byte) string {
	sc := bufio.NewScanner(bytes.NewReader(gomod))
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if rest, ok := strings.CutPrefix(line, "module"); ok && rest != "" && (rest[0] == ' ' || rest[0] == '\t') {
			if i := strings.Index(rest, "//"); i >= 0 {
				rest = rest[:i]
			}
			return strings.Trim(strings.TrimSpace(rest), `"`)
		}
	}
	return ""
}
