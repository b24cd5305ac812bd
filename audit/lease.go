package audit

import (
	"context"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/tools/leaderelection"
	"k8s.io/client-go/tools/leaderelection/resourcelock"
)

// LeaseName is the Lease the replicas hold in turn to write the audit's
// reports: every replica serves admission, one audits.
const LeaseName = "podguard-audit"

// LeaseOptions say where the audit lease is and who campaigns for it.
type LeaseOptions struct {
	// Namespace is podguard's namespace, where the Lease is.
	Namespace string
	// Identity names this replica in the Lease (its pod name, and a
	// random suffix so that a restarted pod is a new holder).
	Identity string
	// Enabled tells whether the config in force runs the background audit.
	Enabled func() bool
}

// Lease timings: client-go's and controller-runtime's defaults.
const (
	leaseDuration = 15 * time.Second
	renewDeadline = 10 * time.Second
	retryPeriod   = 2 * time.Second
)

// Start campaigns for the audit lease whenever the config runs the
// background audit, and audits while it holds the lease, until ctx ends. It
// implements manager.Runnable on every replica, and needs no leader
// election of the manager's: controller-runtime's leader election ends the
// whole process when the lease is lost (an API server restart longer than
// the renew deadline), which would take admission down with the audit.
// Here a lost lease ends the audit only; the replica campaigns again.
func (b *Background) Start(ctx context.Context, o LeaseOptions) error {
	for ctx.Err() == nil {
		if !o.Enabled() {
			b.log.V(1).Info("the background audit is off (audit.background)")
			select {
			case <-ctx.Done():
				return nil
			case <-b.reconfigured():
			}
			continue
		}
		term, cancel := context.WithCancel(ctx)
		go func() {
			// The config turning the audit off ends the term and releases
			// the lease.
			for term.Err() == nil {
				select {
				case <-term.Done():
				case <-b.reconfigured():
					if !o.Enabled() {
						cancel()
					}
				}
			}
		}()
		// The term's work runs here, not in the elector's callback
		// goroutine, so that a term has ended before the next campaign: two
		// terms never overlap on one replica.
		leading := make(chan context.Context)
		le, err := leaderelection.NewLeaderElector(leaderelection.LeaderElectionConfig{
			Lock: &resourcelock.LeaseLock{
				LeaseMeta:  metav1.ObjectMeta{Namespace: o.Namespace, Name: LeaseName},
				Client:     b.client.CoordinationV1(),
				LockConfig: resourcelock.ResourceLockConfig{Identity: o.Identity},
			},
			LeaseDuration:   leaseDuration,
			RenewDeadline:   renewDeadline,
			RetryPeriod:     retryPeriod,
			ReleaseOnCancel: true,
			Name:            LeaseName,
			Callbacks: leaderelection.LeaderCallbacks{
				OnStartedLeading: func(lctx context.Context) {
					select {
					case leading <- lctx:
					case <-lctx.Done():
					}
				},
				OnStoppedLeading: func() {
					b.log.Info("not holding the audit lease: another replica audits, or it is being taken over")
				},
			},
		})
		if err != nil {
			cancel()
			return err
		}
		elected := make(chan struct{})
		go func() {
			defer close(elected)
			le.Run(term) // returns when the lease is lost or term ends
		}()
		select {
		case lctx := <-leading:
			b.log.Info("holding the audit lease: auditing and writing the reports", "lease", o.Namespace+"/"+LeaseName)
			for lctx.Err() == nil {
				if err := b.Run(lctx); err != nil {
					b.log.Error(err, "the background audit stopped; starting it again in 10s")
					select {
					case <-lctx.Done():
					case <-time.After(10 * time.Second):
					}
				}
			}
		case <-elected:
		}
		cancel()
		<-elected
	}
	return nil
}
