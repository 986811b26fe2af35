package main

import (
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/frayhq/fray/jobs"
)

// jobRunnerOptions turns fray-worker's capacity flags into the job runner's
// options.
func jobRunnerOptions(cpu float64, ram, gpu, tpu string, grace time.Duration) (jobs.RunnerOptions, error) {
	o := jobs.RunnerOptions{CPU: cpu, RAM: ram, Grace: grace}
	if ram != "" {
		if n, err := jobs.ParseBytes(ram); err != nil || n <= 0 {
			return o, fmt.Errorf("--ram %q: want a size such as 64g or 512m", ram)
		}
	}
	if gpu != "" && tpu != "" {
		return o, fmt.Errorf("--gpu and --tpu exclude each other")
	}
	if gpu != "" {
		variant, count, ok := strings.Cut(gpu, ":")
		n := 1
		if ok {
			var err error
			if n, err = strconv.Atoi(count); err != nil || n < 1 {
				return o, fmt.Errorf("--gpu %q: want VARIANT:COUNT, e.g. H100:8", gpu)
			}
		}
		o.DeviceKind, o.DeviceVariant, o.DeviceCount = jobs.DeviceGPU, variant, n
	}
	if tpu != "" {
		t, ok := jobs.LookupTPU(tpu)
		if !ok {
			return o, fmt.Errorf("--tpu %q: unknown TPU type (known: %s)", tpu, strings.Join(jobs.TPUVariants(), ", "))
		}
		o.DeviceKind, o.DeviceVariant, o.DeviceCount = jobs.DeviceTPU, t.Variant, t.ChipsPerVM()
	}
	return o, nil
}

// secretFiles parses --secret NAME=FILE flags; each file must be readable
// now (it is read again at each job start).
func secretFiles(flags []string) (map[string]string, error) {
	out := map[string]string{}
	for _, f := range flags {
		name, file, ok := strings.Cut(f, "=")
		if !ok || name == "" || file == "" || strings.ContainsAny(name, " \x00") {
			return nil, fmt.Errorf("--secret %q: want NAME=FILE", f)
		}
		if _, err := os.ReadFile(file); err != nil {
			return nil, fmt.Errorf("--secret %s: %w", name, err)
		}
		out[name] = file
	}
	return out, nil
}

// jobEnviron is the environment job processes start from: the worker's
// without its credentials, plus the NAME=VALUE lines of file (--job-env;
// blank lines and # comments skipped).
func jobEnviron(file string) ([]string, error) {
	env := jobs.WithoutCredentials(os.Environ())
	if file == "" {
		return env, nil
	}
	b, err := os.ReadFile(file)
	if err != nil {
		return nil, fmt.Errorf("--job-env: %w", err)
	}
	for i, l := range strings.Split(string(b), "\n") {
		l = strings.TrimSpace(l)
		if l == "" || strings.HasPrefix(l, "#") {
			continue
		}
		name, _, ok := strings.Cut(l, "=")
		if !ok || name == "" || strings.ContainsAny(name, " \t\x00") {
			return nil, fmt.Errorf("--job-env %s line %d: want NAME=VALUE, got %q", file, i+1, l)
		}
		env = append(env, l)
	}
	return env, nil
}
