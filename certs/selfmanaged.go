package certs

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/go-logr/logr"
	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/util/retry"
)

// Defaults of SelfManagedOptions.
const (
	DefaultCAValidity    = 5 * 365 * 24 * time.Hour
	DefaultCertValidity  = 90 * 24 * time.Hour
	DefaultRolloverDelay = 2 * time.Minute
	DefaultResync        = 5 * time.Minute
)

// SelfManagedOptions configure SelfManaged.
type SelfManagedOptions struct {
	Client kubernetes.Interface
	// Namespace and SecretName name the Secret that holds the CA and the
	// serving certificate, shared by every replica.
	Namespace  string
	SecretName string
	// WebhookConfigurationName names both the MutatingWebhookConfiguration
	// and the ValidatingWebhookConfiguration whose every webhook gets the CA
	// bundle.
	WebhookConfigurationName string
	// Hosts are the DNS names and IP addresses the serving certificate is
	// for.
	Hosts []string
	// CAValidity and CertValidity are the lifetimes of a new CA and of a new
	// serving certificate (which never outlives its CA). Each is replaced
	// when a third of its lifetime is left.
	CAValidity   time.Duration
	CertValidity time.Duration
	// RolloverDelay is how long a new CA is trusted by the webhook
	// configurations before it signs: the time every API server has to see
	// the new bundle.
	RolloverDelay time.Duration
	// Resync is the longest time between two checks; changes to the Secret
	// or the webhook configurations are acted on at once.
	Resync time.Duration
	Log    logr.Logger
}

// SelfManaged keeps podguard's own CA and serving certificate in a Secret,
// rotates them before they expire, keeps the webhook configurations' CA
// bundle in step, and serves the current certificate (GetCertificate).
//
// Every replica runs it; there is no leader. Each pass reads the Secret,
// decides from it alone what is due (plan), and writes with the Secret's
// resourceVersion, so replicas racing agree: the loser of a write conflict
// reads again and finds the work done.
type SelfManaged struct {
	o        SelfManagedOptions
	settings planSettings
	serving  atomic.Pointer[tls.Certificate]
	signer   atomic.Pointer[x509.Certificate] // the CA of serving
	poke     chan struct{}

	mu       sync.Mutex
	warnedNo map[string]bool // webhook configurations reported missing
}

// NewSelfManaged checks the options and fills in defaults.
func NewSelfManaged(o SelfManagedOptions) (*SelfManaged, error) {
	if o.CAValidity == 0 {
		o.CAValidity = DefaultCAValidity
	}
	if o.CertValidity == 0 {
		o.CertValidity = DefaultCertValidity
	}
	if o.RolloverDelay == 0 {
		o.RolloverDelay = DefaultRolloverDelay
	}
	if o.Resync == 0 {
		o.Resync = DefaultResync
	}
	var errs []error
	if o.Client == nil {
		errs = append(errs, errors.New("no Kubernetes client"))
	}
	for what, v := range map[string]string{"namespace": o.Namespace, "Secret name": o.SecretName, "webhook configuration name": o.WebhookConfigurationName} {
		if v == "" {
			errs = append(errs, fmt.Errorf("empty %s", what))
		}
	}
	if len(o.Hosts) == 0 {
		errs = append(errs, errors.New("no host names for the serving certificate"))
	}
	if o.CAValidity < 0 || o.CertValidity < 0 || o.RolloverDelay < 0 || o.Resync < 0 {
		errs = append(errs, errors.New("durations must be positive"))
	}
	if o.CertValidity > o.CAValidity {
		errs = append(errs, fmt.Errorf("certificate validity %s is longer than the CA's, %s", o.CertValidity, o.CAValidity))
	}
	// A CA rotation starts with a third of the CA's life left; the new CA
	// must be trusted, and sign, well before the old one expires.
	if o.RolloverDelay > o.CAValidity/6 {
		errs = append(errs, fmt.Errorf("rollover delay %s must be at most a sixth of the CA validity %s", o.RolloverDelay, o.CAValidity))
	}
	if err := errors.Join(errs...); err != nil {
		return nil, fmt.Errorf("self-managed certificates: %w", err)
	}
	m := &SelfManaged{o: o, poke: make(chan struct{}, 1), warnedNo: map[string]bool{}}
	m.settings = planSettings{
		hosts:         parseHosts(o.Hosts),
		caValidity:    o.CAValidity,
		certValidity:  o.CertValidity,
		rolloverDelay: o.RolloverDelay,
		commonName:    "podguard-ca",
	}
	return m, nil
}

// GetCertificate serves the current certificate; it is the webhook server's
// tls.Config.GetCertificate. Until the first pass has loaded one, TLS
// handshakes fail and so does readiness.
func (m *SelfManaged) GetCertificate(*tls.ClientHelloInfo) (*tls.Certificate, error) {
	if c := m.serving.Load(); c != nil {
		return c, nil
	}
	return nil, errors.New("no serving certificate yet")
}

// SigningCA is the CA of the certificate served now, nil before the first
// pass.
func (m *SelfManaged) SigningCA() *x509.Certificate { return m.signer.Load() }

// NeedLeaderElection is false: every replica serves, so every replica keeps
// its certificate current.
func (m *SelfManaged) NeedLeaderElection() bool { return false }

// Start runs passes until ctx is done: at once, whenever the Secret or a
// webhook configuration changes, when something falls due, and at least
// every Resync. A failed pass is retried with backoff.
func (m *SelfManaged) Start(ctx context.Context) error {
	m.watch(ctx)
	backoff := wait.Backoff{Duration: time.Second, Factor: 2, Jitter: 0.2, Steps: 7, Cap: time.Minute}
	timer := time.NewTimer(0)
	defer timer.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-timer.C:
		case <-m.poke:
		}
		next, err := m.Reconcile(ctx)
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			next = backoff.Step()
			m.o.Log.Error(err, "managing the serving certificate; retrying", "in", next.String())
		} else {
			backoff = wait.Backoff{Duration: time.Second, Factor: 2, Jitter: 0.2, Steps: 7, Cap: time.Minute}
		}
		if !timer.Stop() {
			select {
			case <-timer.C:
			default:
			}
		}
		timer.Reset(next)
	}
}

// conflictBackoff paces the retries of a pass that lost a write race.
var conflictBackoff = wait.Backoff{Duration: 20 * time.Millisecond, Factor: 2, Jitter: 0.5, Steps: 8}

const (
	// passTimeout bounds one pass, so that a hung request cannot stop
	// renewals.
	passTimeout = time.Minute
	// trustRetry is how often, at most, a pass checks again whether the
	// webhook configurations trust the next CA. A change to either
	// configuration triggers a pass at once anyway.
	trustRetry = 10 * time.Second
)

// Reconcile runs one pass: it brings the Secret up to date (creating it if
// needed), puts its trust bundle into the webhook configurations, and loads
// its serving certificate. It returns how long until the next pass is due.
func (m *SelfManaged) Reconcile(ctx context.Context) (time.Duration, error) {
	ctx, cancel := context.WithTimeout(ctx, passTimeout)
	defer cancel()
	var current *material
	err := retry.OnError(conflictBackoff, func(err error) bool {
		return apierrors.IsConflict(err) || apierrors.IsAlreadyExists(err)
	}, func() error {
		var err error
		current, err = m.reconcileOnce(ctx)
		return err
	})
	if current == nil {
		return 0, err
	}
	// Whatever else failed, serve what the Secret holds: it is what the
	// trust bundle was last written for.
	if err := m.load(current.serving); err != nil {
		return 0, err
	}
	for _, ca := range current.trusted {
		if current.serving.Cert.CheckSignatureFrom(ca) == nil {
			m.signer.Store(ca)
			break
		}
	}
	if err != nil {
		return 0, err
	}
	at := wakeAt(current, m.settings)
	if at.IsZero() {
		return min(trustRetry, m.o.Resync), nil
	}
	return max(min(time.Until(at), m.o.Resync), 100*time.Millisecond), nil
}

func (m *SelfManaged) reconcileOnce(ctx context.Context) (*material, error) {
	secrets := m.o.Client.CoreV1().Secrets(m.o.Namespace)
	secret, err := secrets.Get(ctx, m.o.SecretName, metav1.GetOptions{})
	switch {
	case apierrors.IsNotFound(err):
		secret = nil
	case err != nil:
		return nil, fmt.Errorf("reading Secret %s/%s: %w", m.o.Namespace, m.o.SecretName, err)
	}
	var cur *material
	if secret != nil {
		cur = decodeMaterial(secret.Data, secret.Annotations)
	} else {
		cur = decodeMaterial(nil, nil)
	}
	settings := m.settings
	settings.trusted = func(ca *x509.Certificate) (bool, error) { return m.configurationsTrust(ctx, ca) }
	next, changes, err := plan(cur, time.Now(), settings)
	if err != nil {
		return nil, err
	}
	secretVersion := ""
	if secret != nil {
		secretVersion = secret.ResourceVersion
	}
	if len(changes) > 0 {
		if secretVersion, err = m.write(ctx, secret, next); err != nil {
			return nil, err
		}
		what := make([]string, len(changes))
		for i, c := range changes {
			what[i] = c.detail
		}
		m.o.Log.Info("updated the serving certificate Secret", "secret", m.o.Namespace+"/"+m.o.SecretName,
			"changes", what, "servingNotAfter", next.serving.Cert.NotAfter, "caNotAfter", next.signer.Cert.NotAfter)
		for _, c := range changes {
			certificateChanges.WithLabelValues(c.kind).Inc()
		}
	}
	if err := m.ensureBundle(ctx, next.bundle(), secretVersion); err != nil {
		return next, err
	}
	return next, nil
}

// write creates the Secret, or updates it at the resourceVersion read, and
// returns the resourceVersion written.
func (m *SelfManaged) write(ctx context.Context, existing *corev1.Secret, next *material) (string, error) {
	data, since := next.encode()
	secrets := m.o.Client.CoreV1().Secrets(m.o.Namespace)
	if existing == nil {
		s := &corev1.Secret{
			ObjectMeta: metav1.ObjectMeta{
				Name:      m.o.SecretName,
				Namespace: m.o.Namespace,
				Labels:    map[string]string{"app.kubernetes.io/name": "podguard", "app.kubernetes.io/managed-by": "podguard"},
			},
			Type: corev1.SecretTypeTLS,
			Data: data,
		}
		if since != "" {
			s.Annotations = map[string]string{NextSignerTrustedSinceAnnotation: since}
		}
		created, err := secrets.Create(ctx, s, metav1.CreateOptions{FieldManager: "podguard"})
		if err != nil {
			return "", fmt.Errorf("creating Secret %s/%s: %w", m.o.Namespace, m.o.SecretName, err)
		}
		return created.ResourceVersion, nil
	}
	s := existing.DeepCopy()
	s.Data = data
	if since != "" {
		if s.Annotations == nil {
			s.Annotations = map[string]string{}
		}
		s.Annotations[NextSignerTrustedSinceAnnotation] = since
	} else {
		delete(s.Annotations, NextSignerTrustedSinceAnnotation)
	}
	updated, err := secrets.Update(ctx, s, metav1.UpdateOptions{FieldManager: "podguard"})
	if err != nil {
		return "", fmt.Errorf("updating Secret %s/%s: %w", m.o.Namespace, m.o.SecretName, err)
	}
	return updated.ResourceVersion, nil
}

// webhookConfigs are the two configurations podguard keeps the bundle of.
func (m *SelfManaged) webhookConfigs() []webhookConfig {
	ar := m.o.Client.AdmissionregistrationV1()
	name := m.o.WebhookConfigurationName
	return []webhookConfig{
		{kind: "MutatingWebhookConfiguration", get: func(ctx context.Context) (webhookConfigState, error) {
			c, err := ar.MutatingWebhookConfigurations().Get(ctx, name, metav1.GetOptions{})
			if err != nil {
				return webhookConfigState{}, err
			}
			st := webhookConfigState{resourceVersion: c.ResourceVersion}
			for _, w := range c.Webhooks {
				st.add(w.Name, w.ClientConfig)
			}
			return st, nil
		}, patch: func(ctx context.Context, p []byte) error {
			_, err := ar.MutatingWebhookConfigurations().Patch(ctx, name, types.StrategicMergePatchType, p, metav1.PatchOptions{FieldManager: "podguard"})
			return err
		}},
		{kind: "ValidatingWebhookConfiguration", get: func(ctx context.Context) (webhookConfigState, error) {
			c, err := ar.ValidatingWebhookConfigurations().Get(ctx, name, metav1.GetOptions{})
			if err != nil {
				return webhookConfigState{}, err
			}
			st := webhookConfigState{resourceVersion: c.ResourceVersion}
			for _, w := range c.Webhooks {
				st.add(w.Name, w.ClientConfig)
			}
			return st, nil
		}, patch: func(ctx context.Context, p []byte) error {
			_, err := ar.ValidatingWebhookConfigurations().Patch(ctx, name, types.StrategicMergePatchType, p, metav1.PatchOptions{FieldManager: "podguard"})
			return err
		}},
	}
}

// webhookConfig reads and patches one webhook configuration, whichever its
// kind.
type webhookConfig struct {
	kind  string
	get   func(context.Context) (webhookConfigState, error)
	patch func(context.Context, []byte) error
}

// webhookConfigState is what podguard reads of a webhook configuration.
type webhookConfigState struct {
	resourceVersion string
	names           []string
	clientConfigs   []admissionregistrationv1.WebhookClientConfig
}

func (s *webhookConfigState) add(name string, cc admissionregistrationv1.WebhookClientConfig) {
	s.names = append(s.names, name)
	s.clientConfigs = append(s.clientConfigs, cc)
}

// ensureBundle sets the caBundle of every webhook of both configurations to
// bundle, the bundle of the Secret at secretVersion.
//
// A replica must never write a bundle older than the Secret's: it could
// remove a CA another replica has started signing with. So, after reading a
// configuration and before patching it, the Secret's resourceVersion is
// checked again, and the patch carries the configuration's resourceVersion:
// any write by another replica in between (to the Secret, which precedes its
// patches, or to the configuration) makes this pass fail with a conflict and
// start over. A missing configuration is not an error: it may not be
// installed yet, and its creation starts a new pass.
func (m *SelfManaged) ensureBundle(ctx context.Context, bundle []byte, secretVersion string) error {
	for _, wc := range m.webhookConfigs() {
		st, err := wc.get(ctx)
		if apierrors.IsNotFound(err) {
			m.warnMissing(wc.kind)
			continue
		}
		if err != nil {
			return fmt.Errorf("reading %s %s: %w", wc.kind, m.o.WebhookConfigurationName, err)
		}
		var stale []map[string]any
		for i, cc := range st.clientConfigs {
			if !bytes.Equal(cc.CABundle, bundle) {
				stale = append(stale, map[string]any{"name": st.names[i], "clientConfig": map[string]any{"caBundle": bundle}})
			}
		}
		if len(stale) == 0 {
			continue
		}
		secret, err := m.o.Client.CoreV1().Secrets(m.o.Namespace).Get(ctx, m.o.SecretName, metav1.GetOptions{})
		if err != nil {
			return fmt.Errorf("reading Secret %s/%s: %w", m.o.Namespace, m.o.SecretName, err)
		}
		if secret.ResourceVersion != secretVersion {
			return apierrors.NewConflict(corev1.Resource("secrets"), m.o.SecretName,
				errors.New("changed while its bundle was being written to the webhook configurations"))
		}
		p, err := json.Marshal(map[string]any{
			"metadata": map[string]any{"resourceVersion": st.resourceVersion},
			"webhooks": stale,
		})
		if err != nil {
			return err
		}
		if err := wc.patch(ctx, p); err != nil {
			return fmt.Errorf("patching the CA bundle of %s %s: %w", wc.kind, m.o.WebhookConfigurationName, err)
		}
		m.o.Log.Info("patched the CA bundle", "kind", wc.kind, "name", m.o.WebhookConfigurationName, "webhooks", len(stale))
	}
	return nil
}

// configurationsTrust reports whether every webhook of both configurations
// trusts ca. A missing configuration does not: a new CA must not start
// signing before the webhooks that will call podguard trust it.
func (m *SelfManaged) configurationsTrust(ctx context.Context, ca *x509.Certificate) (bool, error) {
	for _, wc := range m.webhookConfigs() {
		st, err := wc.get(ctx)
		if apierrors.IsNotFound(err) {
			m.warnMissing(wc.kind)
			return false, nil
		}
		if err != nil {
			return false, err
		}
		for _, cc := range st.clientConfigs {
			certs, err := parseCerts(cc.CABundle)
			if err != nil || !slices.ContainsFunc(certs, ca.Equal) {
				return false, nil
			}
		}
	}
	return true, nil
}

func (m *SelfManaged) warnMissing(kind string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if !m.warnedNo[kind] {
		m.warnedNo[kind] = true
		m.o.Log.Info("webhook configuration not found; its CA bundle is set once it exists, and a new CA waits for it",
			"kind", kind, "name", m.o.WebhookConfigurationName)
	}
}

// load makes s the certificate served.
func (m *SelfManaged) load(s *Serving) error {
	if cur := m.serving.Load(); cur != nil && cur.Leaf.Equal(s.Cert) {
		return nil
	}
	c, err := s.TLSCertificate()
	if err != nil {
		return fmt.Errorf("loading the serving certificate: %w", err)
	}
	m.serving.Store(c)
	servingNotAfter.Set(float64(s.Cert.NotAfter.Unix()))
	m.o.Log.Info("serving a new certificate", "serial", s.Cert.SerialNumber.Text(16), "notAfter", s.Cert.NotAfter, "issuer", s.Cert.Issuer.CommonName)
	return nil
}

// watch starts informers on the Secret and on both webhook configurations,
// each limited by name (as RBAC's resourceNames require), which trigger a
// pass on every change.
func (m *SelfManaged) watch(ctx context.Context) {
	onChange := cache.ResourceEventHandlerFuncs{
		AddFunc:    func(any) { m.trigger() },
		UpdateFunc: func(any, any) { m.trigger() },
		DeleteFunc: func(any) { m.trigger() },
	}
	byName := func(o *metav1.ListOptions, name string) {
		o.FieldSelector = fields.OneTermEqualSelector("metadata.name", name).String()
	}
	core, ar := m.o.Client.CoreV1(), m.o.Client.AdmissionregistrationV1()
	name := m.o.WebhookConfigurationName
	informers := []struct {
		obj runtime.Object
		lw  *cache.ListWatch
	}{
		{&corev1.Secret{}, &cache.ListWatch{
			ListWithContextFunc: func(ctx context.Context, o metav1.ListOptions) (runtime.Object, error) {
				byName(&o, m.o.SecretName)
				return core.Secrets(m.o.Namespace).List(ctx, o)
			},
			WatchFuncWithContext: func(ctx context.Context, o metav1.ListOptions) (watch.Interface, error) {
				byName(&o, m.o.SecretName)
				return core.Secrets(m.o.Namespace).Watch(ctx, o)
			},
		}},
		{&admissionregistrationv1.MutatingWebhookConfiguration{}, &cache.ListWatch{
			ListWithContextFunc: func(ctx context.Context, o metav1.ListOptions) (runtime.Object, error) {
				byName(&o, name)
				return ar.MutatingWebhookConfigurations().List(ctx, o)
			},
			WatchFuncWithContext: func(ctx context.Context, o metav1.ListOptions) (watch.Interface, error) {
				byName(&o, name)
				return ar.MutatingWebhookConfigurations().Watch(ctx, o)
			},
		}},
		{&admissionregistrationv1.ValidatingWebhookConfiguration{}, &cache.ListWatch{
			ListWithContextFunc: func(ctx context.Context, o metav1.ListOptions) (runtime.Object, error) {
				byName(&o, name)
				return ar.ValidatingWebhookConfigurations().List(ctx, o)
			},
			WatchFuncWithContext: func(ctx context.Context, o metav1.ListOptions) (watch.Interface, error) {
				byName(&o, name)
				return ar.ValidatingWebhookConfigurations().Watch(ctx, o)
			},
		}},
	}
	for _, i := range informers {
		inf := cache.NewSharedIndexInformer(i.lw, i.obj, 0, cache.Indexers{})
		if _, err := inf.AddEventHandler(onChange); err != nil {
			m.o.Log.Error(err, "watching for certificate changes; relying on periodic checks")
			continue
		}
		go inf.RunWithContext(ctx)
	}
}

func (m *SelfManaged) trigger() {
	select {
	case m.poke <- struct{}{}:
	default:
	}
}
