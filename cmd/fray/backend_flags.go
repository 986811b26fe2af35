package main

import (
	"flag"
	"fmt"
	"net/url"

	"github.com/frayhq/fray"
)

// backendFlags are the job-backend choice shared by `fray submit` (and the
// same choice that fray-broker's --backend makes cluster-wide).
type backendFlags struct {
	backend, rayAddress, rayNamespace, irisController, token *string
}

func addBackendFlags(fs *flag.FlagSet) *backendFlags {
	return &backendFlags{
		backend:        fs.String("backend", "", "where the job runs: native (fray workers), ray or iris (default: the cluster's default backend)"),
		rayAddress:     fs.String("ray-address", "", "Ray dashboard URL for --backend ray, e.g. http://head:8265"),
		rayNamespace:   fs.String("ray-namespace", "", "scope for fray's jobs on a shared Ray cluster (--backend ray)"),
		irisController: fs.String("iris-controller", "", "Iris controller URL for --backend iris, e.g. http://host:10000"),
		token:          fs.String("backend-token", "", "bearer token for a Ray dashboard or Iris controller behind an authenticating proxy"),
	}
}

// resolve returns the cluster spec to connect with and the TargetCluster
// to put on the request.
//
//   - no --backend: spec as given, no target;
//   - --backend native: spec as given, target "native" is the default so none;
//   - --backend ray|iris with a nats:// spec: that cluster's dispatcher runs
//     the job on its backend of that name (fray-broker --backend ray ...);
//   - --backend ray|iris otherwise: a ray?/iris? spec built from the flags
//     (an in-process broker and dispatcher drive the backend from here).
func (b *backendFlags) resolve(spec string) (string, string, error) {
	kind := *b.backend
	switch kind {
	case "":
		return spec, "", nil
	case "native":
		sp, err := fray.ParseSpec(spec)
		if err == nil && sp.Kind != fray.SpecNATS && sp.Kind != fray.SpecLocal {
			return "", "", fmt.Errorf("--backend native needs a fray cluster (--nats nats://host:4222), not %q", spec)
		}
		return spec, "", nil
	case fray.SpecRay, fray.SpecIris:
	default:
		return "", "", fmt.Errorf("--backend %q: want native, ray or iris", kind)
	}
	sp, err := fray.ParseSpec(spec)
	if err == nil && sp.Kind == fray.SpecNATS {
		return spec, kind, nil
	}
	q := url.Values{}
	if err == nil && sp.Kind == kind {
		for k, v := range sp.Params {
			q.Set(k, v)
		}
	}
	addrKey, addr := "address", *b.rayAddress
	if kind == fray.SpecIris {
		addrKey, addr = "controller", *b.irisController
	}
	if addr != "" {
		q.Set(addrKey, addr)
	}
	if q.Get(addrKey) == "" {
		return "", "", fmt.Errorf("--backend %s needs --%s-%s URL (or FRAY_CLUSTER_SPEC=%s?%s=URL, or --nats of a fray-broker configured with --backend %s)",
			kind, kind, map[string]string{"address": "address", "controller": "controller"}[addrKey], kind, addrKey, kind)
	}
	if *b.rayNamespace != "" && kind == fray.SpecRay {
		q.Set("namespace", *b.rayNamespace)
	}
	if *b.token != "" {
		q.Set("token", *b.token)
	}
	return kind + "?" + q.Encode(), "", nil
}
