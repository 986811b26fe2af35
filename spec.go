package fray

import (
	"errors"
	"fmt"
	"net/url"
	"strings"
)

// Spec kinds.
const (
	SpecLocal = "local"
	SpecNATS  = "nats"
	SpecRay   = "ray"
	SpecIris  = "iris"
)

// ErrBadSpec reports a cluster spec fray does not understand.
var ErrBadSpec = errors.New("fray: bad cluster spec")

// acceptedSpecs is quoted in every spec error.
const acceptedSpecs = `accepted forms:
  local (or unset)                          an in-process broker and worker
  nats://HOST:PORT[,nats://HOST2:PORT…]     a running fray cluster
  ray?address=http://HOST:8265[&namespace=NS][&token=T][&nats=URL]
                                            jobs go to a Ray cluster (Jobs REST API)
  iris?controller=http://HOST:PORT[&user=U][&token=T][&nats=URL]
                                            jobs go to an Iris controller
  (nats=URL: use that fray cluster's broker instead of an in-process one;
   token=T: bearer token for a head behind an authenticating proxy)`

// Spec is a parsed FRAY_CLUSTER_SPEC.
type Spec struct {
	Kind string
	// URLs are the NATS servers: for nats specs, or the nats= parameter of
	// ray and iris specs. Empty means an in-process broker.
	URLs []string
	// Params holds a ray or iris spec's query parameters (address,
	// namespace, controller, ...).
	Params map[string]string
	Raw    string
}

// ParseSpec parses a cluster spec (the value of FRAY_CLUSTER_SPEC).
func ParseSpec(s string) (Spec, error) {
	raw := s
	s = strings.TrimSpace(s)
	bad := func(why string) (Spec, error) {
		return Spec{}, fmt.Errorf("%w %q: %s\n%s", ErrBadSpec, raw, why, acceptedSpecs)
	}
	switch {
	case s == "" || s == SpecLocal:
		return Spec{Kind: SpecLocal, Raw: raw}, nil
	case strings.HasPrefix(s, "nats://") || strings.HasPrefix(s, "tls://"):
		var urls []string
		for _, u := range strings.Split(s, ",") {
			u = strings.TrimSpace(u)
			pu, err := url.Parse(u)
			if err != nil || pu.Host == "" || (pu.Scheme != "nats" && pu.Scheme != "tls") {
				return bad(fmt.Sprintf("%q is not a nats://HOST:PORT URL", u))
			}
			urls = append(urls, u)
		}
		return Spec{Kind: SpecNATS, URLs: urls, Raw: raw}, nil
	case strings.HasPrefix(s, "ray?") || strings.HasPrefix(s, "iris?") || s == "ray" || s == "iris":
		kind, query, _ := strings.Cut(s, "?")
		q, err := url.ParseQuery(query)
		if err != nil {
			return bad(err.Error())
		}
		sp := Spec{Kind: kind, Params: map[string]string{}, Raw: raw}
		for k, v := range q {
			sp.Params[k] = v[len(v)-1]
		}
		need := map[string]string{SpecRay: "address", SpecIris: "controller"}[kind]
		addr := sp.Params[need]
		if addr == "" {
			return bad(fmt.Sprintf("the %s spec needs %s=http://HOST:PORT", kind, need))
		}
		if u, err := url.Parse(addr); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return bad(fmt.Sprintf("%s %q is not an http(s)://HOST:PORT URL", need, addr))
		}
		if n := sp.Params["nats"]; n != "" {
			nsp, err := ParseSpec(n)
			if err != nil || nsp.Kind != SpecNATS {
				return bad(fmt.Sprintf("nats=%q is not a nats:// URL", n))
			}
			sp.URLs = nsp.URLs
		}
		return sp, nil
	}
	return bad("unknown form")
}

// String renders the spec as given.
func (s Spec) String() string { return s.Raw }
