package deploy_test

import (
	"slices"
	"strings"
	"testing"
)

const (
	clientAuthComponent = "client-auth" // under components/
	clientCAConfigMap   = "podguard-client-ca"
)

// checkClientAuth follows --client-ca-file to the ConfigMap key it reads:
// the file must be on a volume of the ConfigMap podguard-client-ca, not
// through subPath (which would stop a rotated CA from reaching podguard).
func checkClientAuth(r *render, p *problems) {
	f, ok := followFlagFile(r, p, "client-ca-file", "no --client-ca-file; any pod that reaches the webhook port can call it", "a rotated CA")
	if !ok {
		return
	}
	if f.vol == nil {
		p.add(f.ref, "spec.template.spec.volumes", "no volume %s, which --client-ca-file=%s is on", f.mount.Name, f.file)
		return
	}
	if f.vol.ConfigMap == nil || f.vol.ConfigMap.Name != clientCAConfigMap {
		p.add(f.ref, "spec.template.spec.volumes["+f.vol.Name+"]", "--client-ca-file=%s is not on a volume of the ConfigMap %s", f.file, clientCAConfigMap)
		return
	}
	if f.rel != "ca.crt" && len(f.vol.ConfigMap.Items) == 0 {
		p.add(f.ref, f.cpath+".args", "--client-ca-file=%s reads key %s of ConfigMap %s; the README says ca.crt", f.file, f.rel, clientCAConfigMap)
	}
}

func TestClientAuthComponent(t *testing.T) {
	for _, o := range overlays {
		t.Run(o.dir, func(t *testing.T) {
			r := renderWithComponent(t, o.dir, clientAuthComponent, "")
			var p problems
			checkClientAuth(r, &p)
			p = append(p, runChecks(r, o)...)
			for _, msg := range p {
				t.Errorf("overlay %s with components/%s: %s", o.dir, clientAuthComponent, msg)
			}
		})
	}
	t.Run("without the component, the check says so", func(t *testing.T) {
		r, err := load("opt-in")
		if err != nil {
			t.Fatal(err)
		}
		var p problems
		checkClientAuth(r, &p)
		if !slices.ContainsFunc(p, func(msg string) bool { return strings.Contains(msg, "no --client-ca-file") }) {
			t.Errorf("got %q", p)
		}
	})
	t.Run("a subPath mount is caught", func(t *testing.T) {
		r := renderWithComponent(t, "cluster-wide", clientAuthComponent, "")
		c := containerOf(t, r)
		for i := range c.VolumeMounts {
			if c.VolumeMounts[i].Name == "client-ca" {
				c.VolumeMounts[i].MountPath, c.VolumeMounts[i].SubPath = "/client-ca/ca.crt", "ca.crt"
			}
		}
		setArg(t, r, "client-ca-file", "/client-ca/ca.crt/ca.crt")
		var p problems
		checkClientAuth(r, &p)
		if !slices.ContainsFunc(p, func(msg string) bool { return strings.Contains(msg, "uses subPath") }) {
			t.Errorf("got %q", p)
		}
	})
}
