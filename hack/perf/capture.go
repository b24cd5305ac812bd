package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/utils/ptr"

	"github.com/podguard/podguard/e2e/framework"
)

// captureNamespace holds the captured objects, apart from the pods that
// phase B creates and deletes.
const captureNamespace = "perf-capture"

// A body is one captured AdmissionReview and the path it is posted to.
type body struct {
	Name string // file name without .json, such as nginx-mutate
	Path string // /mutate or /validate
	Data []byte
}

// bodyFiles are the captured bodies, in the order of the tables.
var bodyFiles = []struct{ name, path string }{
	{"nginx-mutate", "/mutate"},
	{"tomcat-mutate", "/mutate"},
	{"nginx-validate", "/validate"},
	{"deployment-validate", "/validate"},
}

// capture registers podguard's webhook configurations (opt-in overlay)
// pointed at a null webhook in capture mode, creates the nginx Pod, the
// tomcat Pod of examples/good/tomcat-with-logs.yaml and an nginx
// Deployment in an opted-in namespace, and writes what kube-apiserver sent
// to outDir as the bodyFiles. The null webhook is stopped at the end.
func (e *env) capture(ctx context.Context, outDir string) error {
	rawDir := filepath.Join(e.workDir, "capture")
	if err := os.RemoveAll(rawDir); err != nil {
		return err
	}
	if err := e.startNull(ctx, rawDir); err != nil {
		return err
	}
	defer func() {
		if e.null != nil {
			e.null.stop()
			e.null = nil
		}
	}()
	if err := e.cluster.CreateNamespace(ctx, captureNamespace, optInLabels); err != nil {
		return err
	}
	if err := e.switchTo(ctx, configNull); err != nil {
		return err
	}
	// The probe pods were captured too: start from an empty directory.
	if err := clearDir(rawDir); err != nil {
		return err
	}
	if err := os.MkdirAll(outDir, 0o755); err != nil {
		return err
	}

	c := e.cluster.Client
	if err := c.Create(ctx, nginxPod(captureNamespace, "nginx")); err != nil {
		return fmt.Errorf("creating the nginx pod: %w", err)
	}
	if err := takeCapture(ctx, rawDir, "mutate-Pod-CREATE.json", filepath.Join(outDir, "nginx-mutate.json")); err != nil {
		return err
	}
	if err := takeCapture(ctx, rawDir, "validate-Pod-CREATE.json", filepath.Join(outDir, "nginx-validate.json")); err != nil {
		return err
	}

	cm, tomcat, err := tomcatObjects(filepath.Join(e.root, "examples", "good", "tomcat-with-logs.yaml"))
	if err != nil {
		return err
	}
	cm.Namespace, tomcat.Namespace = captureNamespace, captureNamespace
	if err := c.Create(ctx, cm); err != nil {
		return fmt.Errorf("creating the tomcat ConfigMap: %w", err)
	}
	if err := c.Create(ctx, tomcat); err != nil {
		return fmt.Errorf("creating the tomcat pod: %w", err)
	}
	if err := takeCapture(ctx, rawDir, "mutate-Pod-CREATE.json", filepath.Join(outDir, "tomcat-mutate.json")); err != nil {
		return err
	}
	// Its validate body is not one of the four; make room for the next.
	if err := takeCapture(ctx, rawDir, "validate-Pod-CREATE.json", ""); err != nil {
		return err
	}

	if err := c.Create(ctx, nginxDeployment(captureNamespace, "nginx", 3)); err != nil {
		return fmt.Errorf("creating the nginx Deployment: %w", err)
	}
	return takeCapture(ctx, rawDir, "validate-Deployment-CREATE.json", filepath.Join(outDir, "deployment-validate.json"))
}

// takeCapture waits for the null webhook to write name into dir and moves
// it to dst, or removes it when dst is empty, so that the next request of
// that kind is captured.
func takeCapture(ctx context.Context, dir, name, dst string) error {
	src := filepath.Join(dir, name)
	err := framework.Eventually(ctx, 30*time.Second, 20*time.Millisecond, func() (bool, error) {
		_, err := os.Stat(src)
		return err == nil, nil
	})
	if err != nil {
		return fmt.Errorf("waiting for the null webhook to capture %s: %w", name, err)
	}
	if dst == "" {
		return os.Remove(src)
	}
	return os.Rename(src, dst)
}

func clearDir(dir string) error {
	entries, err := os.ReadDir(dir)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return err
	}
	for _, en := range entries {
		if err := os.Remove(filepath.Join(dir, en.Name())); err != nil {
			return err
		}
	}
	return nil
}

// loadBodies reads the bodyFiles from dir.
func loadBodies(dir string) ([]body, error) {
	var bodies []body
	for _, f := range bodyFiles {
		data, err := os.ReadFile(filepath.Join(dir, f.name+".json"))
		if err != nil {
			return nil, err
		}
		bodies = append(bodies, body{Name: f.name, Path: f.path, Data: data})
	}
	return bodies, nil
}

// nginxPod is the plainest pod: one nginx container, nothing else.
func nginxPod(ns, name string) *corev1.Pod {
	return &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
		Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "nginx", Image: "nginx:1.27"}}},
	}
}

func nginxDeployment(ns, name string, replicas int32) *appsv1.Deployment {
	labels := map[string]string{"app": name}
	return &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
		Spec: appsv1.DeploymentSpec{
			Replicas: ptr.To(replicas),
			Selector: &metav1.LabelSelector{MatchLabels: labels},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: labels},
				Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "nginx", Image: "nginx:1.27"}}},
			},
		},
	}
}

// tomcatObjects reads the example's ConfigMap, and its Deployment's pod
// template as a Pod named tomcat.
func tomcatObjects(path string) (*corev1.ConfigMap, *corev1.Pod, error) {
	objs, err := framework.ReadManifests(path)
	if err != nil {
		return nil, nil, err
	}
	var (
		cm  *corev1.ConfigMap
		pod *corev1.Pod
	)
	for _, obj := range objs {
		switch obj.GetKind() {
		case "ConfigMap":
			cm = &corev1.ConfigMap{}
			if err := runtime.DefaultUnstructuredConverter.FromUnstructured(obj.Object, cm); err != nil {
				return nil, nil, fmt.Errorf("%s: %w", path, err)
			}
		case "Deployment":
			d := &appsv1.Deployment{}
			if err := runtime.DefaultUnstructuredConverter.FromUnstructured(obj.Object, d); err != nil {
				return nil, nil, fmt.Errorf("%s: %w", path, err)
			}
			pod = &corev1.Pod{ObjectMeta: d.Spec.Template.ObjectMeta, Spec: d.Spec.Template.Spec}
			pod.Name = "tomcat"
		}
	}
	if cm == nil || pod == nil {
		return nil, nil, fmt.Errorf("%s: want a ConfigMap and a Deployment", path)
	}
	return cm, pod, nil
}
