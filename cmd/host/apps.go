package main

import (
	"go.uber.org/fx"

	"github.com/plba/plba/apps/mailorder"
)

// The pilot application: order mails from an IMAP mailbox to stored
// orders. host.apps: [mailorder].
func init() { knownApps["mailorder"] = func() fx.Option { return mailorder.Module } }
