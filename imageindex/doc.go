// Package imageindex indexes container image layers into compact, immutable
// path sets, and overlays them into an image file tree that implements
// policies.ImageFS, so policies can ask what an image has at a path without
// the image's content ever being stored.
//
// # Indexing
//
// IndexLayer reads an uncompressed layer tar stream (the caller
// decompresses) with archive/tar, headers only: every file's content is
// discarded as the reader skips it. Names are cleaned as rooted paths, so a
// "../../etc/passwd" entry is "/etc/passwd" and cannot escape the image.
// Limits bound the entries per layer, the bytes per path and the bytes of
// all paths, so a hostile layer costs at most Limits.MaxEntries entries of
// work and Limits.MaxTotalBytes of paths.
//
// # Format
//
// A Layer is its entries sorted by path bytes, front-coded: each entry is
// the length of the prefix it shares with the previous path (a uvarint),
// the rest of its path (a uvarint length and the bytes), a kind byte, and
// for a symlink its target. Every 16th entry starts a block and shares
// nothing, and a []uint32 holds the block offsets, so a lookup
// binary-searches the block starts (full paths, compared in place) and
// decodes at most 16 entries. The paths below a directory are contiguous in
// this order, so a prefix query is a binary search and a scan. A layer is
// one []byte and one []uint32, with no per-entry strings or pointers;
// typical distro paths cost about 17 bytes each, directories included.
// MarshalBinary writes the same buffer behind a magic and a count, and
// ParseLayer validates every entry before it trusts one.
//
// # Overlay rules
//
// The rules are the OCI image-spec layer changesets, as containerd applies
// them onto overlayfs:
//   - Layers apply bottom to top; the topmost layer that has a path, or has
//     entries below it, decides what the path is.
//   - ".wh.NAME" deletes NAME, and everything below it, from the layers
//     below; the same layer may create NAME again.
//   - ".wh..wh..opq" in a directory D hides everything the layers below
//     have below D; D itself stays.
//   - A non-directory at P hides everything the layers below have below P.
//   - A directory only implied by deeper entries is a directory.
//   - Within one layer, entries apply in stream order, as an extractor
//     applies them: the last entry at a path wins; a whiteout or a
//     non-directory deletes what the layer put below its path before it;
//     an entry below a whiteout made earlier re-creates the path as an
//     opaque directory, as does a directory at a path the layer whites
//     out; and nothing stays below a path that ends up a non-directory.
//
// Image.Stat follows symlinks in every element the way securejoin resolves
// a path inside a rootfs (absolute targets from the image root, ".." stopped
// at "/", at most 40 links). Image.Files counts the non-directories below a
// directory at the cost of the entries below it, not of the image; given a
// non-directory, it counts that one path (policies.ImageFS says "at or
// below").
//
// Layers are immutable and safe for concurrent reads, so one *Layer serves
// every Image built on it.
package imageindex
