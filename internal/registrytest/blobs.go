package registrytest

import (
	"context"
	"io"
	"sync"

	ggcrregistry "github.com/google/go-containerregistry/pkg/registry"
	v1 "github.com/google/go-containerregistry/pkg/v1"
)

// virtualLayer is a layer whose compressed blob is never uploaded: Push
// registers it with the blob store, which opens it afresh for every GET.
// The many-entries layer is generated on the fly; the endless one never ends.
type virtualLayer interface {
	v1.Layer
	virtual()
}

type virtualBlob struct {
	size int64
	open func() (io.ReadCloser, error)
}

// blobStore is the registry's in-memory blob handler plus virtual blobs.
type blobStore struct {
	mem ggcrregistry.BlobHandler

	mu      sync.Mutex
	virtual map[v1.Hash]virtualBlob
}

func newBlobStore() *blobStore {
	return &blobStore{mem: ggcrregistry.NewInMemoryBlobHandler(), virtual: map[v1.Hash]virtualBlob{}}
}

func (b *blobStore) addVirtual(l virtualLayer) error {
	d, err := l.Digest()
	if err != nil {
		return err
	}
	size, err := l.Size()
	if err != nil {
		return err
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	b.virtual[d] = virtualBlob{size: size, open: l.Compressed}
	return nil
}

func (b *blobStore) lookup(h v1.Hash) (virtualBlob, bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	v, ok := b.virtual[h]
	return v, ok
}

func (b *blobStore) Get(ctx context.Context, repo string, h v1.Hash) (io.ReadCloser, error) {
	if v, ok := b.lookup(h); ok {
		return v.open()
	}
	return b.mem.Get(ctx, repo, h)
}

func (b *blobStore) Stat(ctx context.Context, repo string, h v1.Hash) (int64, error) {
	if v, ok := b.lookup(h); ok {
		return v.size, nil
	}
	return b.mem.(ggcrregistry.BlobStatHandler).Stat(ctx, repo, h)
}

func (b *blobStore) Put(ctx context.Context, repo string, h v1.Hash, rc io.ReadCloser) error {
	return b.mem.(ggcrregistry.BlobPutHandler).Put(ctx, repo, h, rc)
}

func (b *blobStore) Delete(ctx context.Context, repo string, h v1.Hash) error {
	return b.mem.(ggcrregistry.BlobDeleteHandler).Delete(ctx, repo, h)
}
