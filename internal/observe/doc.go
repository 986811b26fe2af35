// Package observe runs what lets a person see a cluster: the broker's
// Prometheus endpoint and the web dashboard, over one clusterview.View on
// a NATS connection of their own. fray-broker, `fray up` and
// `fray dashboard` all start them through here, so each is wired once.
//
//	x, err := observe.New(observe.Options{URL: url, UI: uiListener})
//	backends = x.WrapBackends(backends) // before the dispatcher is built
//	err = x.Run(ctx)                    // until ctx ends
package observe
