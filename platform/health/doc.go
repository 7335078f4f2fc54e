// Package health runs the host's health checks in the background and serves
// their cached results as Kubernetes-style probes:
//
//   - GET /livez: the process is alive and no component has failed,
//     apart from those that follow a dependency outside the process
//     (lifecycle.External, as every source). It is never driven by an
//     external dependency, so a mail server outage does not get the pod
//     restarted.
//   - GET /readyz: every readiness-gating check passes, every component
//     that gates readiness is running (or paused by an operator; an
//     External one gates it only when registered so), and the host is
//     neither starting (its start has not returned, SetStarting) nor
//     shutting down.
//   - GET /healthz: JSON detail of every check and component (Report),
//     with status 503 when the host is not live or not ready.
//
// A check that panics or outlives its timeout fails with that as its
// reason; a check whose last run has not returned is not started again.
//
// Checks are contributed to the fx group "health.checks" with AsCheck. Each
// runs on its own interval with its own timeout; the endpoints serve the
// last result, so a slow dependency never makes a probe slow.
package health
