package webhook

import (
	"context"
	"reflect"
	"sync"
	"time"

	"github.com/go-logr/logr"
	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
	ctrlmetrics "sigs.k8s.io/controller-runtime/pkg/metrics"

	"github.com/podguard/podguard/config"
	"github.com/podguard/podguard/inspector"
)

// retiredInspectorGrace is how long an inspector replaced by a config reload
// keeps running, for the requests that started on the previous config.
const retiredInspectorGrace = 30 * time.Second

// imageInspectors gives each State the image inspector its config asks
// for. A reload that leaves the images settings as they were keeps the
// inspector, and with it the cache; one that changes them builds a new one.
type imageInspectors struct {
	secrets client.Reader
	log     logr.Logger

	mu  sync.Mutex
	cur *inspector.Inspector
	cfg config.ImagesConfig
}

// attach sets st.Images from st's config.
func (x *imageInspectors) attach(st *State) error {
	c := st.Config.Images
	x.mu.Lock()
	defer x.mu.Unlock()
	if !c.Enabled() {
		x.retire(x.cur)
		x.cur = nil
		return nil
	}
	if x.cur != nil && sameInspector(x.cfg, c) {
		st.Images = x.cur
		x.cfg = c
		return nil
	}
	o := inspector.OptionsFor(&c)
	o.Registerer = ctrlmetrics.Registry
	o.Log = x.log
	if c.PullSecrets && x.secrets != nil {
		o.PullSecrets = x.readSecret
	}
	ins, err := inspector.New(o)
	if err != nil {
		return err
	}
	x.retire(x.cur)
	x.cur, x.cfg = ins, c
	st.Images = ins
	x.log.Info("image inspection on", "registries", c.Registries, "budget", c.Budget.Duration.String(), "pullSecrets", c.PullSecrets, "cacheDir", c.CacheDir)
	return nil
}

// readSecret reads a pull secret straight from the API server, for one
// registry call: no informer holds Secret values.
func (x *imageInspectors) readSecret(ctx context.Context, namespace, name string) (*corev1.Secret, error) {
	s := &corev1.Secret{}
	if err := x.secrets.Get(ctx, client.ObjectKey{Namespace: namespace, Name: name}, s); err != nil {
		return nil, err
	}
	return s, nil
}

func (x *imageInspectors) retire(ins *inspector.Inspector) {
	if ins != nil {
		time.AfterFunc(retiredInspectorGrace, ins.Close)
	}
}

// close stops the inspector in force.
func (x *imageInspectors) close() {
	x.mu.Lock()
	defer x.mu.Unlock()
	if x.cur != nil {
		x.cur.Close()
		x.cur = nil
	}
}

// sameInspector reports whether two images configs build the same
// inspector: the budget is read per request, so changing it alone keeps
// the inspector and its cache.
func sameInspector(a, b config.ImagesConfig) bool {
	a.Budget, b.Budget = nil, nil
	return reflect.DeepEqual(a, b)
}
