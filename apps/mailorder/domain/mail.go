package domain

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"mime/quotedprintable"
	netmail "net/mail"
	"path"
	"strings"
	"time"

	"github.com/emersion/go-message"
	"github.com/emersion/go-message/mail"
	"github.com/emersion/go-message/textproto"
)

// AttachmentKind says how an attachment is read.
type AttachmentKind string

// The attachment kinds.
const (
	// KindCSV is an order in CSV.
	KindCSV AttachmentKind = "csv"
	// KindJSON is an order in JSON.
	KindJSON AttachmentKind = "json"
	// KindOther is anything else; it is ignored and noted in the audit.
	KindOther AttachmentKind = "other"
)

// Mail is a parsed mail: the headers the domain needs and its attachments.
type Mail struct {
	// MessageID is the Message-ID without angle brackets; synthetic
	// ("sha256-<hex>@mailorder.invalid") when the mail has none.
	MessageID string
	// From is the sender's address, lower-cased; synthetic
	// ("sender-sha256-<hex>@mailorder.invalid") when the address is not
	// readable text (see cleanSender).
	From string
	// FromName is the sender's display name, if any.
	FromName string
	// Subject is the RFC 2047 decoded subject.
	Subject string
	// Date is the Date header, zero when missing or invalid.
	Date time.Time
	// Attachments are all attachments in the order they appear. Only order
	// attachments (KindCSV, KindJSON) carry their Data.
	Attachments []Attachment
	// Notes say how the mail was understood (synthetic id, ignored parts).
	Notes []string
}

// Attachment is one attachment of a mail.
type Attachment struct {
	// Name is the decoded file name (RFC 2047 or RFC 2231), "" if none.
	Name string
	// ContentType is the lower-cased media type, e.g. "text/csv".
	ContentType string
	// Charset is the charset parameter of the content type, if any.
	Charset string
	// Kind says whether the attachment is an order and in which format.
	Kind AttachmentKind
	// Data is the transfer-decoded content; only set for order attachments.
	Data []byte
	// SHA256 is the hex SHA-256 of Data; only set for order attachments.
	SHA256 string
}

// ParseMail is the extract step: it reads the raw RFC 5322 bytes of a mail.
// Content problems (too big, no sender, broken MIME structure, an order
// attachment over the size limit or with a broken encoding) return a
// *RejectError. ParseMail never panics and reads at most cfg's limits.
// The Mail's text (addresses, name, subject, file names, notes) is valid
// UTF-8 without control characters (see cleanText); a Message-ID that is
// not, or that is longer than MaxMessageIDBytes, is replaced by a
// synthetic one derived from its bytes.
func ParseMail(raw []byte, cfg Config) (*Mail, error) {
	cfg = cfg.WithDefaults()
	if int64(len(raw)) > cfg.MaxMailBytes {
		return nil, reject("", 0, "", fmt.Sprintf("mail is %d bytes, more than the limit of %d bytes", len(raw), cfg.MaxMailBytes))
	}
	br := bufio.NewReader(bytes.NewReader(raw))
	th, err := textproto.ReadHeader(br)
	if err != nil {
		return nil, reject("", 0, "", "unreadable mail header: "+err.Error())
	}
	h := mail.Header{Header: message.Header{Header: th}}
	m := &Mail{}

	from, err := h.AddressList("From")
	if err != nil {
		// Text that is not UTF-8 (a Latin-1 mailer's raw bytes) or a word
		// in an unknown charset: read it as the Subject is read, the bytes
		// replaced, rather than reject a mail whose address is readable.
		if l, lerr := lenientAddresses.ParseList(strings.ToValidUTF8(h.Get("From"), "\ufffd")); lerr == nil {
			m.Notes = append(m.Notes, "sender (From) held bytes that are not UTF-8 text or words in an unknown charset; they were replaced by U+FFFD")
			from, err = l, nil
		}
	}
	if err != nil || len(from) == 0 || from[0].Address == "" {
		if err != nil {
			return nil, reject("", 0, "", "unreadable sender (From): "+err.Error())
		}
		return nil, reject("", 0, "", "mail has no sender (From)")
	}
	m.From = strings.ToLower(strings.TrimSpace(from[0].Address))
	m.FromName = from[0].Name

	if s, err := h.Subject(); err == nil {
		m.Subject = s
	} else {
		m.Subject = h.Get("Subject")
		m.Notes = append(m.Notes, "subject could not be decoded: "+err.Error())
	}
	if id, err := h.MessageID(); err == nil && id != "" {
		m.MessageID = id
	} else if raw := strings.TrimSpace(h.Get("Message-Id")); raw != "" {
		m.MessageID = strings.Trim(raw, "<>")
		m.Notes = append(m.Notes, "malformed Message-ID used as is")
	}
	if m.MessageID == "" {
		sum := sha256.Sum256(raw)
		m.MessageID = "sha256-" + hex.EncodeToString(sum[:16]) + "@mailorder.invalid"
		m.Notes = append(m.Notes, "mail has no Message-ID; using "+m.MessageID)
	}
	if d, err := h.Date(); err == nil {
		m.Date = d
	} else {
		m.Notes = append(m.Notes, "unreadable Date header ignored")
	}
	m.MessageID = cleanMessageID(m.MessageID, &m.Notes)
	m.From = cleanSender(m.From, h.Get("From"), &m.Notes)
	cleanField("sender name", &m.FromName, &m.Notes)
	cleanField("subject", &m.Subject, &m.Notes)

	w := walker{cfg: cfg, mail: m}
	if err := w.walk(th, br, 0); err != nil {
		var rej *RejectError
		if errors.As(err, &rej) { // the reason can still name the mail
			rej.From, rej.Subject, rej.MessageID = m.From, m.Subject, m.MessageID
		}
		return nil, err
	}
	for i := range m.Notes { // they may quote what could not be read
		m.Notes[i], _ = cleanText(m.Notes[i])
	}
	return m, nil
}

type walker struct {
	cfg   Config
	mail  *Mail
	parts int
}

// walk visits one entity (header and its undecoded body).
func (w *walker) walk(th textproto.Header, body io.Reader, depth int) error {
	w.parts++
	if w.parts > w.cfg.MaxParts {
		return reject("", 0, "", fmt.Sprintf("mail has more than %d MIME parts", w.cfg.MaxParts))
	}
	if depth > w.cfg.MaxDepth {
		return reject("", 0, "", fmt.Sprintf("MIME parts nested deeper than %d levels", w.cfg.MaxDepth))
	}
	h := message.Header{Header: th}
	mediaType, params := contentType(h)
	disp, dparams := contentDisposition(h)
	name := cleanName(fileName(h, dparams, params))
	cleanField(fmt.Sprintf("file name %q", clip(name)), &name, &w.mail.Notes)

	isAttachment := disp == "attachment" || name != ""
	switch {
	case strings.HasPrefix(mediaType, "multipart/") && !isAttachment:
		boundary := params["boundary"]
		if boundary == "" {
			return reject("", 0, "", mediaType+" part without boundary")
		}
		mr := textproto.NewMultipartReader(body, boundary)
		for {
			p, err := mr.NextPart()
			if errors.Is(err, io.EOF) {
				return nil
			}
			if err != nil {
				return reject("", 0, "", "broken MIME structure: "+err.Error())
			}
			if err := w.walk(p.Header, p, depth+1); err != nil {
				return err
			}
		}
	case mediaType == "message/rfc822":
		// A forwarded mail, inline or attached (as "forward as attachment"
		// writes it, with a name): walk its parts too (its headers are not
		// used).
		br := bufio.NewReader(transferDecoder(h.Get("Content-Transfer-Encoding"), body))
		inner, err := textproto.ReadHeader(br)
		if err != nil {
			w.mail.Notes = append(w.mail.Notes, "unreadable forwarded mail ignored")
			return nil
		}
		return w.walk(inner, br, depth+1)
	case !isAttachment:
		return nil // body text
	}

	att := Attachment{Name: name, ContentType: mediaType, Charset: strings.ToLower(params["charset"])}
	att.Kind = kindOf(mediaType, name)
	display := name
	if display == "" {
		display = "(unnamed " + mediaType + ")"
	}
	if att.Kind == KindOther {
		w.mail.Notes = append(w.mail.Notes, fmt.Sprintf("ignored attachment %q (%s): not an order format", display, mediaType))
		w.mail.Attachments = append(w.mail.Attachments, att)
		return nil
	}
	enc := strings.ToLower(strings.TrimSpace(h.Get("Content-Transfer-Encoding")))
	switch enc {
	case "", "7bit", "8bit", "binary", "base64", "quoted-printable":
	default:
		return reject(display, 0, "", fmt.Sprintf("unknown transfer encoding %q", enc))
	}
	data, err := io.ReadAll(io.LimitReader(transferDecoder(enc, body), w.cfg.MaxAttachmentBytes+1))
	if err != nil {
		return reject(display, 0, "", fmt.Sprintf("cannot decode %s content: %v", enc, err))
	}
	if int64(len(data)) > w.cfg.MaxAttachmentBytes {
		return reject(display, 0, "", fmt.Sprintf("attachment is larger than the limit of %d bytes", w.cfg.MaxAttachmentBytes))
	}
	sum := sha256.Sum256(data)
	att.Data = data
	att.SHA256 = hex.EncodeToString(sum[:])
	w.mail.Attachments = append(w.mail.Attachments, att)
	return nil
}

// contentType parses Content-Type, tolerating broken parameters (the
// charset and boundary beside one are read leniently); the default is
// text/plain.
func contentType(h message.Header) (string, map[string]string) {
	t, params, err := h.ContentType()
	if err != nil {
		v := h.Get("Content-Type")
		params = map[string]string{}
		for _, p := range []string{"charset", "boundary"} {
			if s, _ := lenientParam(v, p); s != "" {
				params[p] = s
			}
		}
		return fallbackMediaType(v, "text/plain"), params
	}
	if params == nil {
		params = map[string]string{}
	}
	return strings.ToLower(t), params
}

// contentDisposition parses Content-Disposition, tolerating broken
// parameters.
func contentDisposition(h message.Header) (string, map[string]string) {
	v := h.Get("Content-Disposition")
	if v == "" {
		return "", map[string]string{}
	}
	d, params, err := h.ContentDisposition()
	if err != nil {
		return fallbackMediaType(v, ""), map[string]string{}
	}
	if params == nil {
		params = map[string]string{}
	}
	return strings.ToLower(d), params
}

func fallbackMediaType(v, def string) string {
	if i := strings.IndexByte(v, ';'); i >= 0 {
		v = v[:i]
	}
	v = strings.ToLower(strings.TrimSpace(v))
	if v == "" {
		return def
	}
	return v
}

// lenientAddresses reads a From header that the strict reader refused:
// an RFC 2047 word in a charset it does not know keeps its bytes as they
// are (cleanText replaces what is not UTF-8 and notes it).
var lenientAddresses = netmail.AddressParser{WordDecoder: &lenientWords}

// cleanName decodes leftover RFC 2047 words and keeps only the base name (a
// file name is never a path here).
func cleanName(name string) string {
	if strings.Contains(name, "=?") {
		if d, err := lenientWords.DecodeHeader(name); err == nil {
			name = d
		}
	}
	name = strings.TrimSpace(strings.ReplaceAll(name, "\\", "/"))
	if name == "" {
		return ""
	}
	name = path.Base(name)
	if name == "." || name == "/" {
		return ""
	}
	return name
}

// kindOf decides the format of an attachment: by content type when it names
// an order format, else by extension.
func kindOf(mediaType, name string) AttachmentKind {
	switch mediaType {
	case "text/csv", "application/csv", "text/comma-separated-values", "application/vnd.ms-excel.csv":
		return KindCSV
	case "application/json", "text/json":
		return KindJSON
	}
	switch strings.ToLower(path.Ext(name)) {
	case ".csv":
		return KindCSV
	case ".json":
		return KindJSON
	}
	return KindOther
}

// transferDecoder decodes a Content-Transfer-Encoding. Unknown encodings pass
// through (callers check them first where it matters).
func transferDecoder(enc string, r io.Reader) io.Reader {
	switch strings.ToLower(strings.TrimSpace(enc)) {
	case "base64":
		return base64.NewDecoder(base64.StdEncoding, &whitespaceStripper{r: r})
	case "quoted-printable":
		return quotedprintable.NewReader(r)
	default:
		return r
	}
}

// whitespaceStripper drops CR, LF, tab and space, which may appear in a
// base64 body (line breaks, sloppy writers).
type whitespaceStripper struct {
	r io.Reader
}

func (s *whitespaceStripper) Read(p []byte) (int, error) {
	for {
		n, err := s.r.Read(p)
		j := 0
		for i := 0; i < n; i++ {
			switch p[i] {
			case '\r', '\n', ' ', '\t':
			default:
				p[j] = p[i]
				j++
			}
		}
		if j > 0 || err != nil {
			return j, err
		}
	}
}
