package manifests

import (
	"bytes"
	"fmt"
	"unicode/utf8"

	"golang.org/x/text/encoding/unicode"
	"golang.org/x/text/transform"
)

// asKubectlReads returns a file's content as the text kubectl reads from
// it: kubectl (cli-runtime's FileVisitor, for files and stdin alike) reads
// through unicode.BOMOverride(unicode.UTF8.NewDecoder()), which drops a
// UTF-8 byte order mark at the start, decodes UTF-16 that starts with one,
// and turns each byte that is not valid UTF-8 into U+FFFD. So a stray
// Latin-1 byte in a comment is harmless, and one in a value changes that
// value; either way the file is read, with a warning naming the lines.
// Valid UTF-8, nearly every file, is returned as it is, without a copy.
func asKubectlReads(name string, data []byte) ([]byte, []Warning) {
	utf16 := bytes.HasPrefix(data, []byte{0xfe, 0xff}) || bytes.HasPrefix(data, []byte{0xff, 0xfe})
	if !utf16 && utf8.Valid(data) {
		return bytes.TrimPrefix(data, utf8BOM), nil
	}
	var warns []Warning
	if !utf16 {
		if lines := invalidUTF8Lines(data); len(lines) > 0 {
			msg := fmt.Sprintf("invalid UTF-8 on line %d", lines[0])
			if n := len(lines) - 1; n > 0 {
				msg += fmt.Sprintf(" and %d more %s", n, pluralWord(n, "line", "lines"))
			}
			msg += ": each bad byte is read as U+FFFD, as kubectl reads it; save the file as UTF-8"
			warns = append(warns, Warning{File: name, Line: lines[0], Msg: msg})
		}
	}
	out, _, err := transform.Bytes(unicode.BOMOverride(unicode.UTF8.NewDecoder()), data)
	if err != nil {
		// The decoders replace what they cannot decode rather than fail;
		// should one fail, the bytes are read as they are.
		return data, warns
	}
	return out, warns
}

// invalidUTF8Lines returns the 1-based lines that hold bytes that are not
// valid UTF-8, in order.
func invalidUTF8Lines(data []byte) []int {
	var lines []int
	line := 1
	for i := 0; i < len(data); {
		c := data[i]
		if c == '\n' {
			line++
		}
		if c < utf8.RuneSelf {
			i++
			continue
		}
		r, size := utf8.DecodeRune(data[i:])
		if r == utf8.RuneError && size == 1 && (len(lines) == 0 || lines[len(lines)-1] != line) {
			lines = append(lines, line)
		}
		i += size
	}
	return lines
}

func pluralWord(n int, one, many string) string {
	if n == 1 {
		return one
	}
	return many
}

// firstUnprintable returns the first character of data that yaml refuses
// ("control characters are not allowed", a message without a line), and
// its 1-based line; ok is false if there is none.
func firstUnprintable(data []byte) (r rune, line int, ok bool) {
	line = 1
	for i := 0; i < len(data); {
		r, size := utf8.DecodeRune(data[i:])
		switch {
		case r == '\n':
			line++
		case r == '\t', r == '\r', r >= 0x20 && r <= 0x7e, r == 0x85,
			r >= 0xa0 && r <= 0xd7ff, r >= 0xe000 && r <= 0xfffd && !(r == utf8.RuneError && size == 1),
			r >= 0x10000 && r <= 0x10ffff:
		default:
			return r, line, true
		}
		i += size
	}
	return 0, 0, false
}
