package jobs

import "testing"

func TestTheClusterSpecJobsGetHoldsNoUserOrPassword(t *testing.T) {
	for in, want := range map[string]string{
		"nats://127.0.0.1:4222":                         "nats://127.0.0.1:4222",
		"nats://u:p@127.0.0.1:4222":                     "nats://127.0.0.1:4222",
		"tls://token@b1:4222,nats://u:p@w@b2:4222/path": "tls://b1:4222,nats://b2:4222/path",
		"nats://b1:4222/x@y":                            "nats://b1:4222/x@y",
	} {
		if got := WithoutUserinfo(in); got != want {
			t.Errorf("WithoutUserinfo(%q) = %q, want %q", in, got, want)
		}
	}
}
