package policies

import (
	"context"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"unicode/utf8"
)

// Budgets. podguard answers a pod that anyone allowed to create pods wrote,
// and reports about it to kube-apiserver, kubectl and CI logs: what it says
// must not grow faster than what it was given, nor without bound. These
// numbers bound every finding of every policy, whatever the input.
const (
	// MaxFindingsPerPolicy is how many violations, and separately how many
	// warnings, one policy reports about one pod. The rest are counted and
	// summarised in one more finding ("and 9,997 more ..."). The first ones
	// are kept, in the order the policy met them (spec order), so the
	// answer is deterministic.
	MaxFindingsPerPolicy = 10
	// MaxQuoted is how many bytes of a user-supplied string (an annotation
	// entry, a key name, a container name) a message quotes; longer ones
	// are cut with a marker saying how long they were.
	MaxQuoted = 128
	// MaxListed is how many items (keys, containers) a message lists; the
	// rest are counted: `"a", "b", ... and 9,990 more`.
	MaxListed = 10
	// MaxMessageBytes bounds one finding's message, whatever a policy puts
	// in it: the last line of defence behind MaxQuoted and MaxListed.
	MaxMessageBytes = 2048
)

// quote renders s as %q does, cut to at most MaxQuoted bytes between the
// quotes (on a rune or escape boundary) with a marker saying how long s
// was. Control characters and bytes that are not UTF-8 come out escaped,
// and count at their escaped length: 128 bytes of binary are 512 quoted.
func quote(s string) string {
	if len(s) <= MaxQuoted/4 {
		return strconv.Quote(s)
	}
	if q := strconv.Quote(s); len(q) <= MaxQuoted+2 {
		return q
	}
	var b strings.Builder
	b.WriteByte('"')
	for i := 0; i < len(s); {
		r, size := utf8.DecodeRuneInString(s[i:])
		var piece string
		if r == utf8.RuneError && size == 1 {
			piece = fmt.Sprintf(`\x%02x`, s[i])
		} else {
			q := strconv.Quote(s[i : i+size])
			piece = q[1 : len(q)-1]
		}
		if b.Len()-1+len(piece) > MaxQuoted {
			break
		}
		b.WriteString(piece)
		i += size
	}
	fmt.Fprintf(&b, `"…(%s bytes in all)`, thousands(len(s)))
	return b.String()
}

// truncateMessage cuts a message to MaxMessageBytes on a rune boundary.
func truncateMessage(msg string) string {
	if len(msg) <= MaxMessageBytes {
		return msg
	}
	const marker = "…(message truncated)"
	cut := MaxMessageBytes - len(marker)
	for cut > 0 && !utf8.RuneStart(msg[cut]) {
		cut--
	}
	return msg[:cut] + marker
}

// thousands renders n with thousands separators: 9,997.
func thousands(n int) string {
	s := fmt.Sprint(n)
	if n < 0 {
		return "-" + thousands(-n)
	}
	var b strings.Builder
	for i, r := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(r)
	}
	return b.String()
}

// cancelled reports whether the request the policy runs for has ended: the
// API server gave up (its timeout passed) or the client went away. Policies
// call it in loops over user-sized input and stop early when it is true; the
// engine then answers with the context's error rather than a verdict.
func (in Input) cancelled() bool {
	return in.Ctx != nil && in.Ctx.Err() != nil
}

// ctxErr is the engine's error for a request that ended while it ran.
func ctxErr(ctx context.Context) error {
	if ctx == nil || ctx.Err() == nil {
		return nil
	}
	return fmt.Errorf("policy evaluation stopped: %w", context.Cause(ctx))
}

// appendCapped stamps the policy on its findings and appends the first
// MaxFindingsPerPolicy of them to to, in order; the rest are counted in one
// more finding, at the field path of the first one left out.
//
// The summary carries the keys of the findings it counts (Finding.Keys),
// each list once: findings about one object share one list, so that a pod
// with 2,000 references to one ConfigMap costs one copy of its keys, not
// 2,000.
func appendCapped(to []Finding, policy string, from []Finding, what string) []Finding {
	listed, more := 0, 0
	first := ""
	var keys []string
	seen := map[KeyListID]bool{}
	for _, f := range from {
		n, beyond := isNotListed(f)
		if listed < MaxFindingsPerPolicy && !beyond {
			f.Policy = policy
			to = append(to, f)
			listed++
			continue
		}
		if more == 0 {
			first = f.Field
		}
		more += max(n, 1)
		if len(f.Keys) > 0 {
			if id := KeyListOf(f.Keys); !seen[id] {
				seen[id] = true
				switch len(seen) {
				case 1:
					keys = f.Keys // shared, as it is: never appended to
				case 2:
					keys = slices.Concat(keys, f.Keys) // a copy, ours to append to
				default:
					keys = append(keys, f.Keys...)
				}
			}
		}
	}
	if more > 0 {
		if more != 1 {
			what += "s"
		}
		to = append(to, Finding{Policy: policy, Field: first, Keys: keys, Message: fmt.Sprintf(
			"and %s more %s of this policy, from this field on, not listed (at most %d are); fix the ones above and check again",
			thousands(more), what, MaxFindingsPerPolicy)})
	}
	return to
}
