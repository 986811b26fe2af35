// Package daemon holds what fray's daemons (fray-broker, fray-worker) share
// on their command line: usage errors, which exit 2, and the exit itself.
package daemon
