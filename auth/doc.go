// Package auth gives a fray cluster roles and tenants with NATS's own
// mechanisms: one account per tenant (its own streams and buckets, seen by
// no other tenant), one user per role with subject permissions.
//
// Roles: admin (the broker's services), producer (submit, read its own
// results, actors, objects), worker (pull its pool, store results, its own
// registry entry and allocation, the events and logs of the jobs placed on
// it, host actors) and viewer (read-only). Every worker is a user of its
// own whose credentials fix its worker id: nats-server's configuration
// has no permission templates, so each worker's block names its own
// subjects.
// PermissionsFor lists each role's subjects; Init writes the nats-server
// configuration and each user's credentials:
//
//	res, err := auth.Init(auth.Options{Dir: "fray-auth"})
//	// fray-broker --config fray-auth/nats.conf, with fray-auth/fray-admin.env loaded
//
// A producer's results are readable by it alone: its owner token is its
// user name, and it may only subscribe to fray.stored.<user>.> and
// direct-get fray.results.<user>.>. Its inboxes are _INBOX.<user>.>.
package auth
