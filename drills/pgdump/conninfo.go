package pgdump

import (
	"errors"
	"net/url"
	"strings"
)

// splitPassword separates the password from a libpq connection string (a
// postgres:// URL or key=value pairs), so that a program can be given the
// rest on its command line, where other users of the host can read it, and
// the password in its environment (PGPASSWORD), where they cannot.
func splitPassword(dsn string) (rest, password string, err error) {
	if strings.HasPrefix(dsn, "postgres://") || strings.HasPrefix(dsn, "postgresql://") {
		u, err := url.Parse(dsn)
		if err != nil {
			return "", "", errors.New("the database URL is not a valid URL")
		}
		if u.User != nil {
			password, _ = u.User.Password()
			u.User = url.User(u.User.Username())
		}
		q := u.Query()
		if p := q.Get("password"); p != "" {
			password = p
		}
		q.Del("password")
		u.RawQuery = q.Encode()
		return u.String(), password, nil
	}
	pairs, err := parseKeywords(dsn)
	if err != nil {
		return "", "", err
	}
	var b strings.Builder
	for _, kv := range pairs {
		if kv[0] == "password" {
			password = kv[1]
			continue
		}
		if b.Len() > 0 {
			b.WriteByte(' ')
		}
		b.WriteString(kv[0] + "='" + strings.NewReplacer(`\`, `\\`, `'`, `\'`).Replace(kv[1]) + "'")
	}
	return b.String(), password, nil
}

// parseKeywords reads key=value pairs as libpq does: values are bare words
// or single-quoted with backslash escapes.
func parseKeywords(s string) ([][2]string, error) {
	var out [][2]string
	i := 0
	skip := func() {
		for i < len(s) && strings.IndexByte(" \t\n\r", s[i]) >= 0 {
			i++
		}
	}
	for {
		skip()
		if i >= len(s) {
			return out, nil
		}
		start := i
		for i < len(s) && s[i] != '=' && strings.IndexByte(" \t\n\r", s[i]) < 0 {
			i++
		}
		key := s[start:i]
		skip()
		if i >= len(s) || s[i] != '=' || key == "" {
			return nil, errors.New("the connection string is neither a postgres:// URL nor key=value pairs")
		}
		i++
		skip()
		var val strings.Builder
		if i < len(s) && s[i] == '\'' {
			i++
			closed := false
			for i < len(s) {
				c := s[i]
				if c == '\\' && i+1 < len(s) {
					val.WriteByte(s[i+1])
					i += 2
					continue
				}
				i++
				if c == '\'' {
					closed = true
					break
				}
				val.WriteByte(c)
			}
			if !closed {
				return nil, errors.New("the connection string has an unterminated quoted value")
			}
		} else {
			for i < len(s) && strings.IndexByte(" \t\n\r", s[i]) < 0 {
				if s[i] == '\\' && i+1 < len(s) {
					i++
				}
				val.WriteByte(s[i])
				i++
			}
		}
		out = append(out, [2]string{key, val.String()})
	}
}
