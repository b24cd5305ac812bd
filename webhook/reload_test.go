package webhook

import (
	"strings"
	"testing"

	"github.com/podguard/podguard/config"
)

func TestConfigErrorsAreLoggedOnOneLine(t *testing.T) {
	_, err := config.Parse("config.yaml", []byte("apiVersion: podguard.io/v1alpha1\nkind: Config\nnope: 1\nalso: 2\n"))
	if err == nil {
		t.Fatal("want a config error")
	}
	got := oneLine{err}.Error()
	if strings.Contains(got, "\n") {
		t.Errorf("%q spans several lines", got)
	}
	if !strings.HasPrefix(got, "invalid config config.yaml: ") || !strings.Contains(got, "nope") || !strings.Contains(got, "; ") {
		t.Errorf("%q does not list every problem with its field after the source", got)
	}
	t.Log(got)
}
