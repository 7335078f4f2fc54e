package imap_test

import (
	"strconv"
	"strings"

	goimap "github.com/emersion/go-imap/v2"
)

// Helpers for the hooks of imaptest.Proxy.

// command splits a client line into its tag and upper-cased command name
// ("UID FETCH" for UID commands) and the rest.
func command(line string) (tag, name, rest string) {
	f := strings.Fields(line)
	if len(f) < 2 {
		return "", "", ""
	}
	tag, name = f[0], strings.ToUpper(f[1])
	i := 2
	if name == "UID" && len(f) > 2 {
		name += " " + strings.ToUpper(f[2])
		i = 3
	}
	return tag, name, strings.Join(f[i:], " ")
}

// uidSetHas reports whether the IMAP sequence set s ("1:3,7", "5:*")
// names uid.
func uidSetHas(s string, uid goimap.UID) bool {
	for _, part := range strings.Split(s, ",") {
		lo, hi, isRange := strings.Cut(part, ":")
		a, err := strconv.ParseUint(lo, 10, 32)
		if err != nil {
			continue
		}
		b := a
		if isRange {
			if hi == "*" {
				b = 1<<32 - 1
			} else if b, err = strconv.ParseUint(hi, 10, 32); err != nil {
				continue
			}
		}
		if a > b {
			a, b = b, a
		}
		if uint64(uid) >= a && uint64(uid) <= b {
			return true
		}
	}
	return false
}
