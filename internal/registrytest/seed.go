package registrytest

import (
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
)

// Seeded is one pushed image or index.
type Seeded struct {
	Ref    string  // "127.0.0.1:PORT/tomcat:9"
	Digest v1.Hash // manifest (or index) digest
}

// DigestRef is Ref's repository at Digest: "127.0.0.1:PORT/tomcat@sha256:...".
func (s Seeded) DigestRef() string {
	repo := s.Ref
	if strings.Contains(repo, "@") {
		return repo
	}
	for i := len(repo) - 1; i >= 0 && repo[i] != '/'; i-- {
		if repo[i] == ':' {
			repo = repo[:i]
			break
		}
	}
	return repo + "@" + s.Digest.String()
}

// Images are the refs and digests SeedAll pushed.
type Images struct {
	Tomcat      Seeded // tomcat:9            Tomcat()
	Ubuntu      Seeded // ubuntu:22.04        Ubuntu()
	UBI         Seeded // ubi:9               UBI()
	Whiteout    Seeded // whiteout:1          Whiteout()
	AppConfig   Seeded // appconfig:1         AppConfig()
	UsersRoot   Seeded // users:root          Users().Root
	UsersNumber Seeded // users:1000          Users().Numeric
	UsersNamed  Seeded // users:named         Users().Named
	MultiArch   Seeded // multiarch:1         MultiArch() (the index)
	// MultiArchAMD64 and MultiArchARM64 are the index's image manifests.
	MultiArchAMD64, MultiArchARM64 Seeded
	Private                        Seeded // private/app:1 AppConfig(), basic auth PrivateUser/PrivatePassword on "private"
	MaliciousPAX                   Seeded // malicious/pax:1       MaliciousPAX()
	MaliciousTraversal             Seeded // malicious/traversal:1 MaliciousTraversal()
	MaliciousMany                  Seeded // malicious/many:1      MaliciousMany(ManyEntries)
	Slow                           Seeded // slow/app:1    Tomcat(), Slow("slow", SlowDelay)
	Broken                         Seeded // broken/app:1  Tomcat(), Status("broken", 500)
	Stalled                        Seeded // stall/app:1   Tomcat(), Stall("stall"): layer blobs send headers only
	Endless                        Seeded // endless/app:1 Endless(), NeverEndingBlob("endless")

	// ManyEntries is the number of entries of MaliciousMany's layer.
	ManyEntries int
}

// Credentials and fault parameters of SeedAll.
const (
	PrivateUser     = "podguard"
	PrivatePassword = "registrytest-secret"
	SlowDelay       = 2 * time.Second
)

// SeedOptions tunes Seed.
type SeedOptions struct {
	// ManyEntries is the number of entries of malicious/many:1
	// (default DefaultManyEntries).
	ManyEntries int
}

// SeedAll pushes every synthetic image (see Images for the repositories),
// then protects "private" with basic auth and switches the faults on
// "slow", "broken", "stall" and "endless". It fails t on error.
// Seeding is cheap (the 3,000,000-entry layer's digests are constants);
// pulling malicious/many:1 is not: the client has 1.5 GB of tar to read.
func SeedAll(t testing.TB, r *Registry) Images {
	t.Helper()
	return SeedWith(t, r, SeedOptions{})
}

// SeedWith is SeedAll with options.
func SeedWith(t testing.TB, r *Registry, o SeedOptions) Images {
	t.Helper()
	imgs, err := Seed(r, o)
	if err != nil {
		t.Fatalf("registrytest: seed: %v", err)
	}
	return imgs
}

// Seed is SeedWith without testing.TB, for Serve.
func Seed(r *Registry, o SeedOptions) (Images, error) {
	if o.ManyEntries <= 0 {
		o.ManyEntries = DefaultManyEntries
	}
	var firstErr error
	push := func(repoTag string, img v1.Image) Seeded {
		if firstErr != nil {
			return Seeded{}
		}
		h, err := r.PushImage(repoTag, img)
		if err != nil {
			firstErr = fmt.Errorf("push %s: %w", repoTag, err)
		}
		return Seeded{Ref: r.Ref(repoTag), Digest: h}
	}
	users := Users()
	tomcat := Tomcat()
	appConfig := AppConfig()
	imgs := Images{
		Tomcat:             push("tomcat:9", tomcat),
		Ubuntu:             push("ubuntu:22.04", Ubuntu()),
		UBI:                push("ubi:9", UBI()),
		Whiteout:           push("whiteout:1", Whiteout()),
		AppConfig:          push("appconfig:1", appConfig),
		UsersRoot:          push("users:root", users.Root),
		UsersNumber:        push("users:1000", users.Numeric),
		UsersNamed:         push("users:named", users.Named),
		Private:            push("private/app:1", appConfig),
		MaliciousPAX:       push("malicious/pax:1", MaliciousPAX()),
		MaliciousTraversal: push("malicious/traversal:1", MaliciousTraversal()),
		MaliciousMany:      push("malicious/many:1", MaliciousMany(o.ManyEntries)),
		Slow:               push("slow/app:1", tomcat),
		Broken:             push("broken/app:1", tomcat),
		Stalled:            push("stall/app:1", tomcat),
		Endless:            push("endless/app:1", Endless()),
		ManyEntries:        o.ManyEntries,
	}
	if firstErr != nil {
		return Images{}, firstErr
	}
	idx := MultiArch()
	h, err := r.PushImageIndex("multiarch:1", idx)
	if err != nil {
		return Images{}, fmt.Errorf("push multiarch:1: %w", err)
	}
	imgs.MultiArch = Seeded{Ref: r.Ref("multiarch:1"), Digest: h}
	im, err := idx.IndexManifest()
	if err != nil {
		return Images{}, err
	}
	for _, d := range im.Manifests {
		s := Seeded{Ref: r.Ref("multiarch@" + d.Digest.String()), Digest: d.Digest}
		switch d.Platform.Architecture {
		case "amd64":
			imgs.MultiArchAMD64 = s
		case "arm64":
			imgs.MultiArchARM64 = s
		}
	}
	r.RequireBasicAuth(PrivateUser, PrivatePassword, "private")
	r.Slow("slow", SlowDelay)
	r.Status("broken", http.StatusInternalServerError)
	r.Stall("stall")
	r.NeverEndingBlob("endless")
	return imgs, nil
}
