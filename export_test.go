package fray

// ResetCurrent forgets (and closes) the default client, so a test can point
// FRAY_CLUSTER_SPEC elsewhere and get a fresh one.
func ResetCurrent() {
	currentMu.Lock()
	c := current
	current = nil
	currentMu.Unlock()
	if c != nil {
		c.Close()
	}
}
