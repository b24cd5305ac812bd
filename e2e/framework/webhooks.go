package framework

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"strings"

	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/util/retry"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/kustomize/api/krusty"
	"sigs.k8s.io/kustomize/kyaml/filesys"
	"sigs.k8s.io/yaml"
)

// WebhookConfigurationName is the name of the MutatingWebhookConfiguration
// and of the ValidatingWebhookConfiguration that the overlays ship.
const WebhookConfigurationName = "podguard"

// RenderWebhooks renders the kustomize overlay in overlayDir and returns its
// MutatingWebhookConfiguration and ValidatingWebhookConfiguration, of which
// the overlay must have exactly one each. The overlay's other objects are
// ignored.
//
// Only the clientConfig of each webhook is changed: the in-cluster Service is
// replaced by the URL baseURL + the Service's path (for example
// https://127.0.0.1:8443/mutate), and caBundle is set. Everything else, from
// rules and selectors to failure policies and timeouts, is as shipped.
func RenderWebhooks(overlayDir, baseURL string, caBundle []byte) (*admissionregistrationv1.MutatingWebhookConfiguration, *admissionregistrationv1.ValidatingWebhookConfiguration, error) {
	base, err := url.Parse(baseURL)
	if err != nil {
		return nil, nil, fmt.Errorf("parsing webhook base URL: %w", err)
	}
	// The API server calls webhooks over HTTPS only, and forbids a query or
	// a fragment in the URL.
	if base.Scheme != "https" || base.Host == "" || base.RawQuery != "" || base.Fragment != "" {
		return nil, nil, fmt.Errorf("webhook base URL %q must be https://host[:port][/path] with no query or fragment", baseURL)
	}
	if len(caBundle) == 0 {
		return nil, nil, errors.New("empty caBundle")
	}

	resources, err := krusty.MakeKustomizer(krusty.MakeDefaultOptions()).Run(filesys.MakeFsOnDisk(), overlayDir)
	if err != nil {
		return nil, nil, fmt.Errorf("rendering kustomize overlay %s: %w", overlayDir, err)
	}
	var (
		mutating   []*admissionregistrationv1.MutatingWebhookConfiguration
		validating []*admissionregistrationv1.ValidatingWebhookConfiguration
	)
	for _, r := range resources.Resources() {
		var obj any
		switch r.GetKind() {
		case "MutatingWebhookConfiguration":
			m := &admissionregistrationv1.MutatingWebhookConfiguration{}
			mutating = append(mutating, m)
			obj = m
		case "ValidatingWebhookConfiguration":
			v := &admissionregistrationv1.ValidatingWebhookConfiguration{}
			validating = append(validating, v)
			obj = v
		default:
			continue
		}
		if gv := r.GetApiVersion(); gv != admissionregistrationv1.SchemeGroupVersion.String() {
			return nil, nil, fmt.Errorf("%s %s in %s has apiVersion %s, want %s",
				r.GetKind(), r.GetName(), overlayDir, gv, admissionregistrationv1.SchemeGroupVersion)
		}
		data, err := r.AsYAML()
		if err != nil {
			return nil, nil, fmt.Errorf("encoding %s %s: %w", r.GetKind(), r.GetName(), err)
		}
		// Strict, so that a field these types do not know is an error
		// instead of silently missing from what the tests register.
		if err := yaml.UnmarshalStrict(data, obj); err != nil {
			return nil, nil, fmt.Errorf("decoding %s %s: %w", r.GetKind(), r.GetName(), err)
		}
	}
	if len(mutating) != 1 || len(validating) != 1 {
		return nil, nil, fmt.Errorf("overlay %s has %d MutatingWebhookConfigurations and %d ValidatingWebhookConfigurations, want one of each",
			overlayDir, len(mutating), len(validating))
	}

	m, v := mutating[0], validating[0]
	for i := range m.Webhooks {
		if err := pointAt(&m.Webhooks[i].ClientConfig, base, caBundle); err != nil {
			return nil, nil, fmt.Errorf("webhook %s: %w", m.Webhooks[i].Name, err)
		}
	}
	for i := range v.Webhooks {
		if err := pointAt(&v.Webhooks[i].ClientConfig, base, caBundle); err != nil {
			return nil, nil, fmt.Errorf("webhook %s: %w", v.Webhooks[i].Name, err)
		}
	}
	return m, v, nil
}

// PointWebhooksAt rewrites, in place, the clientConfig of every webhook of the
// webhook configurations among objs, as RenderWebhooks does: the Service
// becomes a URL on baseURL, and caBundle is set (or cleared, when empty, for
// a component that fills it in itself). Other objects are left alone.
func PointWebhooksAt(objs []*unstructured.Unstructured, baseURL string, caBundle []byte) error {
	base, err := url.Parse(baseURL)
	if err != nil {
		return fmt.Errorf("parsing webhook base URL: %w", err)
	}
	for _, obj := range objs {
		var (
			typed any
			ccs   []*admissionregistrationv1.WebhookClientConfig
		)
		switch obj.GetKind() {
		case "MutatingWebhookConfiguration":
			c := &admissionregistrationv1.MutatingWebhookConfiguration{}
			if err := runtime.DefaultUnstructuredConverter.FromUnstructured(obj.Object, c); err != nil {
				return fmt.Errorf("decoding %s %s: %w", obj.GetKind(), obj.GetName(), err)
			}
			for i := range c.Webhooks {
				ccs = append(ccs, &c.Webhooks[i].ClientConfig)
			}
			typed = c
		case "ValidatingWebhookConfiguration":
			c := &admissionregistrationv1.ValidatingWebhookConfiguration{}
			if err := runtime.DefaultUnstructuredConverter.FromUnstructured(obj.Object, c); err != nil {
				return fmt.Errorf("decoding %s %s: %w", obj.GetKind(), obj.GetName(), err)
			}
			for i := range c.Webhooks {
				ccs = append(ccs, &c.Webhooks[i].ClientConfig)
			}
			typed = c
		default:
			continue
		}
		for _, cc := range ccs {
			if err := pointAt(cc, base, caBundle); err != nil {
				return fmt.Errorf("%s %s: %w", obj.GetKind(), obj.GetName(), err)
			}
		}
		// Through JSON, so that the result holds only JSON types.
		data, err := json.Marshal(typed)
		if err != nil {
			return err
		}
		if err := obj.UnmarshalJSON(data); err != nil {
			return fmt.Errorf("re-encoding %s %s: %w", obj.GetKind(), obj.GetName(), err)
		}
	}
	return nil
}

// pointAt replaces the Service of a webhook's clientConfig by a URL on base
// with the Service's path, and sets its caBundle.
func pointAt(cc *admissionregistrationv1.WebhookClientConfig, base *url.URL, caBundle []byte) error {
	if cc.Service == nil {
		return errors.New("clientConfig has no service to replace")
	}
	u := *base
	if cc.Service.Path != nil {
		u.Path = strings.TrimSuffix(u.Path, "/") + *cc.Service.Path
	}
	s := u.String()
	cc.URL = &s
	cc.Service = nil
	cc.CABundle = nil
	if len(caBundle) > 0 {
		cc.CABundle = append([]byte(nil), caBundle...)
	}
	return nil
}

// InstallWebhooks registers the overlay's webhook configurations, rendered
// by RenderWebhooks, creating them or replacing those already there.
//
// The API server picks up webhook configurations asynchronously, from a
// watch: a request made right after InstallWebhooks returns may still miss
// the webhooks, so a test's first check should poll.
func InstallWebhooks(ctx context.Context, c client.Client, overlayDir, baseURL string, caBundle []byte) error {
	m, v, err := RenderWebhooks(overlayDir, baseURL, caBundle)
	if err != nil {
		return err
	}
	if err := CreateOrReplace(ctx, c, m); err != nil {
		return fmt.Errorf("installing MutatingWebhookConfiguration %s: %w", m.Name, err)
	}
	if err := CreateOrReplace(ctx, c, v); err != nil {
		return fmt.Errorf("installing ValidatingWebhookConfiguration %s: %w", v.Name, err)
	}
	return nil
}

// UninstallWebhooks deletes the MutatingWebhookConfiguration and the
// ValidatingWebhookConfiguration named WebhookConfigurationName. Missing ones
// are not an error.
func UninstallWebhooks(ctx context.Context, c client.Client) error {
	objs := map[string]client.Object{
		"MutatingWebhookConfiguration":   &admissionregistrationv1.MutatingWebhookConfiguration{},
		"ValidatingWebhookConfiguration": &admissionregistrationv1.ValidatingWebhookConfiguration{},
	}
	var errs []error
	for kind, obj := range objs {
		obj.SetName(WebhookConfigurationName)
		if err := c.Delete(ctx, obj); client.IgnoreNotFound(err) != nil {
			errs = append(errs, fmt.Errorf("deleting %s %s: %w", kind, WebhookConfigurationName, err))
		}
	}
	return errors.Join(errs...)
}

// CreateOrReplace creates obj, or, if an object of its kind and name exists,
// replaces that object's content with obj's.
func CreateOrReplace(ctx context.Context, c client.Client, obj client.Object) error {
	err := c.Create(ctx, obj)
	if !apierrors.IsAlreadyExists(err) {
		return err
	}
	return retry.RetryOnConflict(retry.DefaultRetry, func() error {
		existing, ok := obj.DeepCopyObject().(client.Object)
		if !ok {
			return fmt.Errorf("copy of %T is not a client.Object", obj)
		}
		if err := c.Get(ctx, client.ObjectKeyFromObject(obj), existing); err != nil {
			return err
		}
		obj.SetResourceVersion(existing.GetResourceVersion())
		return c.Update(ctx, obj)
	})
}
