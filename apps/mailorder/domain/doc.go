// Package domain is the business of the mailorder pilot application: it turns
// an order mail into stored orders, without knowing anything about the runtime
// that delivers the mail (no platform, fx, logging, tracing, IMAP, NATS or SQL
// client is imported here; a test enforces it).
//
// # Pipeline
//
// [Service.ProcessMail] runs five steps on the raw RFC 5322 bytes of one mail:
//
//  1. extract: [ParseMail] reads the headers (From, Subject decoded per
//     RFC 2047, Message-ID, Date) and walks every MIME part in any nesting of
//     multiparts (and forwarded message/rfc822 mails, inline or attached:
//     their parts are walked as the mail's own). A part is an attachment
//     when its disposition is "attachment" or when it has a file name (inline
//     parts with a file name count). Transfer encodings base64 and
//     quoted-printable are decoded; file names may be RFC 2047 or RFC 2231
//     encoded, in any charset (RFC 2231 continuations too), or raw 8-bit
//     bytes (replaced as described under Text).
//  2. parse: [ParseCSV] and [ParseJSON] turn an order attachment into a
//     [Draft]. The format is chosen by content type (text/csv,
//     application/json) and else by extension (.csv, .json). Attachments of any
//     other type are ignored and noted in the order's audit.
//  3. validate: [Validate] checks every line (see below).
//  4. store: [Store.SaveOrder] persists the order and its confirmation
//     (outbox row) atomically and idempotently.
//  5. confirm: the confirmation text is built by [Order.Confirmation]; the
//     store writes it to its outbox in the same transaction as the order, so a
//     sender can deliver it later exactly for stored orders.
//
// A mail with two order attachments yields two orders. All attachments are
// parsed and validated before anything is stored: one invalid attachment
// rejects the whole mail and nothing is stored.
//
// # Errors
//
// Any content problem (mail too big, no sender, no order attachment, a bad
// line) is permanent: the error is a [*RejectError] and errors.Is(err,
// [ErrRejected]) holds. Its Reason names the attachment, the line and the
// field. Any other error (the store failed, the context ended) is ordinary and
// worth a retry; because SaveOrder is idempotent, a retry is safe.
//
// # Validation rules
//
//   - SKU: trimmed and upper-cased, then it must match ^[A-Z0-9][A-Z0-9-]{2,31}$
//     (3 to 32 characters, letters, digits and dashes, not starting with a
//     dash).
//   - Quantity: a whole number, at least 1, at most Config.MaxQuantity.
//   - Unit price: not negative, at most two decimal places, at most
//     [MaxUnitPrice]. "12.50", "12,50" and "12" are accepted; a price must not
//     contain both a comma and a dot (thousands separators are not supported).
//     A comma is only possible as a decimal comma: in a ';'-separated CSV, or
//     in a quoted field of a ','-separated CSV.
//   - An order has at least one line and at most Config.MaxLinesPerOrder.
//   - An order attachment is at most Config.MaxAttachmentBytes after transfer
//     decoding; a mail is at most Config.MaxMailBytes.
//
// Money is held as integer cents ([Money]); no float is used anywhere in
// prices or totals.
//
// # Identity
//
// An order's ID is derived from the mail's Message-ID and the SHA-256 of the
// attachment's decoded bytes ([OrderID]), so re-processing the same mail (at
// least once delivery) always yields the same order, and the store can
// de-duplicate on (message id, attachment hash). A mail without Message-ID
// gets a synthetic one derived from the SHA-256 of the raw mail; a mail
// whose Message-ID holds bytes that are not UTF-8, control characters or
// bidirectional overrides, or
// is longer than [MaxMessageIDBytes] (more than a store's index entry may
// hold), gets one derived from the SHA-256 of that id (replacing the bytes
// or cutting the id could make two mails' ids equal).
//
// # Text
//
// Every text of a Mail, a Draft and an Order (addresses, names, subject, file
// names, JSON strings, notes) is valid UTF-8 without control characters but
// tab and without bidirectional embeddings, overrides and isolates: a
// sender's 8-bit header bytes, NULs, escape sequences or a U+202E that
// would show "order<U+202E>vsc.exe" as "orderexe.csv" are replaced by U+FFFD
// and noted in the audit, so every store keeps the order (PostgreSQL refuses
// bytes that are not UTF-8 and the NUL byte) and pages show it as it is.
// The sender's address is the exception: it is the order's customer and
// the confirmation's recipient, and replaced bytes would make two senders'
// addresses one. An address that is not clean text (or holds U+FFFD) is
// replaced by a synthetic one derived from the SHA-256 of the From header
// ("sender-sha256-<hex>@mailorder.invalid", which matches no real
// customer and receives no mail), and noted; the order is kept.
package domain
