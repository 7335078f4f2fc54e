package config_test

import (
	"errors"
	"fmt"
	"time"

	"github.com/plba/plba/platform/config"
)

// MailConfig is a section a mail module would declare.
type MailConfig struct {
	Host         string        `koanf:"host"`
	Port         int           `koanf:"port"`
	Password     string        `koanf:"password" secret:"true"`
	PollInterval time.Duration `koanf:"poll_interval"`
}

// Validate checks the decoded section; keys are relative to it.
func (m MailConfig) Validate() error {
	var ps config.Problems
	if m.Port < 1 || m.Port > 65535 {
		ps.Add("port", "must be between 1 and 65535 (got %d)", m.Port)
	}
	if m.PollInterval < time.Second {
		ps.Add("poll_interval", "must be at least 1s (got %s)", m.PollInterval)
	}
	return ps.Err()
}

func Example() {
	// A package declares its section at package level:
	//   var _ = config.Declare("mail", MailConfig{...})
	// This example uses its own registry instead of the global one.
	reg := config.NewRegistry()
	if err := reg.Declare("mail", MailConfig{Host: "localhost", Port: 993, PollInterval: time.Minute}); err != nil {
		panic(err)
	}

	cfg, err := config.Load(config.Options{
		Registry: reg,
		Environ:  []string{"PLBA_MAIL__PASSWORD=hunter2", "PLBA_MAIL__POLL_INTERVAL=30s"},
		Sets:     []string{"mail.host=imap.example.com"},
	})
	if err != nil {
		panic(err)
	}
	var mail MailConfig
	if err := cfg.Decode("mail", &mail); err != nil {
		panic(err)
	}
	fmt.Println(mail.Host, mail.Port, mail.PollInterval, mail.Password)
	fmt.Print(string(cfg.YAML()))

	// Every problem is reported at once, each with its source and key.
	_, err = config.Load(config.Options{
		Registry: reg,
		Environ:  []string{"PLBA_MAIL__PORT=0"},
		Sets:     []string{"mail.poll_interval=5 parsecs", "mail.hots=x"},
	})
	var cerr *config.Error
	if errors.As(err, &cerr) {
		fmt.Println(err)
	}
	// Output:
	// imap.example.com 993 30s hunter2
	// mail:
	//     host: imap.example.com
	//     password: '[redacted]'
	//     poll_interval: 30s
	//     port: 993
	// --set mail.hots=...: mail.hots: unknown key (known keys: host, port, password, poll_interval)
	// --set mail.poll_interval=...: mail.poll_interval: invalid duration "5 parsecs": use a number with a unit (500ms, 30s, 5m, 1h)
	// env PLBA_MAIL__PORT: mail.port: must be between 1 and 65535 (got 0)
}
