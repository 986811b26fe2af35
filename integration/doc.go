// Package integration tests fray's real binaries as separate processes:
// fray-broker, fray-worker and the fray CLI are built once per run, started,
// SIGKILLed and restarted, and checked through the public client.
package integration
