package deploy_test

import (
	"path"
	"slices"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
)

const (
	clientAuthComponent = "client-auth" // under components/
	clientCAConfigMap   = "podguard-client-ca"
)

// checkClientAuth follows --client-ca-file to the ConfigMap key it reads:
// the file must be on a volume of the ConfigMap podguard-client-ca, not
// through subPath (which would stop a rotated CA from reaching podguard).
func checkClientAuth(r *render, p *problems) {
	d := r.deployment(p)
	if d == nil {
		return
	}
	c, cpath := podguardContainer(d, p)
	if c == nil {
		return
	}
	ref := deploymentRef(d)
	file, ok := argValue(c.Args, "client-ca-file")
	if !ok {
		p.add(ref, cpath+".args", "no --client-ca-file; any pod that reaches the webhook port can call it")
		return
	}
	file = path.Clean(file)
	mountIdx := -1
	for i, m := range c.VolumeMounts {
		if strings.HasPrefix(file, strings.TrimSuffix(m.MountPath, "/")+"/") && (mountIdx < 0 || len(m.MountPath) > len(c.VolumeMounts[mountIdx].MountPath)) {
			mountIdx = i
		}
	}
	if mountIdx < 0 {
		p.add(ref, cpath+".args", "--client-ca-file=%s is not under any of the container's volumeMounts", file)
		return
	}
	m := c.VolumeMounts[mountIdx]
	if m.SubPath != "" || m.SubPathExpr != "" {
		p.add(ref, cpath+".volumeMounts["+m.Name+"]", "uses subPath, which stops a rotated CA from reaching podguard")
	}
	vi := slices.IndexFunc(d.Spec.Template.Spec.Volumes, func(v corev1.Volume) bool { return v.Name == m.Name })
	if vi < 0 {
		p.add(ref, "spec.template.spec.volumes", "no volume %s, which --client-ca-file=%s is on", m.Name, file)
		return
	}
	v := d.Spec.Template.Spec.Volumes[vi]
	if v.ConfigMap == nil || v.ConfigMap.Name != clientCAConfigMap {
		p.add(ref, "spec.template.spec.volumes["+v.Name+"]", "--client-ca-file=%s is not on a volume of the ConfigMap %s", file, clientCAConfigMap)
		return
	}
	if rel := strings.TrimPrefix(file, strings.TrimSuffix(m.MountPath, "/")+"/"); rel != "ca.crt" && len(v.ConfigMap.Items) == 0 {
		p.add(ref, cpath+".args", "--client-ca-file=%s reads key %s of ConfigMap %s; the README says ca.crt", file, rel, clientCAConfigMap)
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
