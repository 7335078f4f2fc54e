// Package embedded runs a NATS server with JetStream inside the host
// process, so the jetstream queue backend is durable on one machine without
// any external service.
//
// Start launches the server with JetStream file storage under
// Config.StoreDir. By default the server opens no network listener at all:
// clients in the same process connect through Server.ClientOptions, which
// uses nats.InProcessServer. Setting Config.Listen ("127.0.0.1:4222") also
// accepts network clients, for the nats CLI or for another process. The
// host that owns the server applies its configuration to the streams and
// buckets when it starts; another plba host connected through Listen
// checks them only at its own start, so it must be configured alike
// (sources.lease.ttl above all: a lease bucket's TTL lowered under a host
// that renews less often lets two hosts hold one lease).
//
// Durability: Config.Sync chooses how the server flushes its file store.
// "interval" (the default) fsyncs every SyncInterval (2 minutes unless set),
// which survives a process crash but may lose the last interval of
// acknowledged writes on a power loss or kernel crash; "always" fsyncs every
// write before it is acknowledged, which survives both and costs throughput
// (see the package benchmarks).
package embedded
