package domain

import (
	"errors"
	"fmt"
	"time"
)

// Config holds the limits of the domain. The zero value is usable: every zero
// field takes its documented default in WithDefaults.
type Config struct {
	// MaxMailBytes is the largest raw mail accepted, at least MinLimitBytes.
	// Default 25 MiB.
	MaxMailBytes int64 `koanf:"max_mail_bytes"`
	// MaxAttachmentBytes is the largest order attachment accepted, after
	// transfer decoding, at least MinLimitBytes. Default 5 MiB.
	MaxAttachmentBytes int64 `koanf:"max_attachment_bytes"`
	// MaxLinesPerOrder is the most lines one order attachment may hold.
	// Default 500.
	MaxLinesPerOrder int `koanf:"max_lines_per_order"`
	// MaxQuantity is the largest quantity of one line. Default 1 000 000.
	MaxQuantity int64 `koanf:"max_quantity"`
	// MaxParts is the most MIME parts walked in one mail. Default 200.
	MaxParts int `koanf:"max_parts"`
	// MaxDepth is the deepest nesting of multiparts walked. Default 16.
	MaxDepth int `koanf:"max_depth"`
	// Now returns the time recorded as an order's ReceivedAt. Default
	// time.Now. Not configurable from files; for tests.
	Now func() time.Time `koanf:"-"`
}

// MinLimitBytes is the least Config.MaxMailBytes and
// Config.MaxAttachmentBytes: a mail's headers alone take a few hundred
// bytes, and under such a limit every mail, or every order, would be
// refused.
const MinLimitBytes = 1 << 10

// WithDefaults returns c with every zero field set to its default.
func (c Config) WithDefaults() Config {
	if c.MaxMailBytes == 0 {
		c.MaxMailBytes = 25 << 20
	}
	if c.MaxAttachmentBytes == 0 {
		c.MaxAttachmentBytes = 5 << 20
	}
	if c.MaxLinesPerOrder == 0 {
		c.MaxLinesPerOrder = 500
	}
	if c.MaxQuantity == 0 {
		c.MaxQuantity = 1_000_000
	}
	if c.MaxParts == 0 {
		c.MaxParts = 200
	}
	if c.MaxDepth == 0 {
		c.MaxDepth = 16
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	return c
}

// Validate reports a configuration that cannot work: one error per
// setting at fault, each starting with its key ("max_quantity: ..."),
// joined.
func (c Config) Validate() error {
	var errs []error
	if c.MaxMailBytes != 0 && c.MaxMailBytes < MinLimitBytes {
		errs = append(errs, fmt.Errorf("max_mail_bytes: must be at least %d (every mail would be refused), got %d", MinLimitBytes, c.MaxMailBytes))
	}
	if c.MaxAttachmentBytes != 0 && c.MaxAttachmentBytes < MinLimitBytes {
		errs = append(errs, fmt.Errorf("max_attachment_bytes: must be at least %d (every order would be refused), got %d", MinLimitBytes, c.MaxAttachmentBytes))
	}
	if c.MaxLinesPerOrder < 0 {
		errs = append(errs, fmt.Errorf("max_lines_per_order: must not be negative, got %d", c.MaxLinesPerOrder))
	}
	if c.MaxQuantity < 0 || c.MaxQuantity > 1_000_000 {
		errs = append(errs, fmt.Errorf("max_quantity: must be between 1 and 1000000, got %d", c.MaxQuantity))
	}
	if c.MaxParts < 0 {
		errs = append(errs, fmt.Errorf("max_parts: must not be negative, got %d", c.MaxParts))
	}
	if c.MaxDepth < 0 || c.MaxDepth > 64 {
		errs = append(errs, fmt.Errorf("max_depth: must be between 1 and 64, got %d", c.MaxDepth))
	}
	return errors.Join(errs...)
}
