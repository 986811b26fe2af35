package observe

import (
	"flag"
	"fmt"
	"io"
	"net"

	"github.com/frayhq/fray/internal/daemon"
)

// Flags are the command-line flags of metrics and the dashboard, shared by
// fray-broker and `fray up`.
type Flags struct {
	MetricsAddr, UIAddr, UIToken string
	UIActions                    bool
}

// Register adds the flags to fs. uiDefault is --ui-addr's default ("" for
// off).
func (f *Flags) Register(fs *flag.FlagSet, uiDefault string) {
	fs.StringVar(&f.MetricsAddr, "metrics-addr", "", "serve Prometheus metrics at http://HOST:PORT/metrics (off when empty; port 0 picks a free one)")
	uiHelp := "serve the web dashboard at HOST:PORT (off when empty; port 0 picks a free one); keep it on 127.0.0.1 unless --ui-token is set"
	if uiDefault != "" {
		uiHelp = "serve the web dashboard at HOST:PORT (\"off\" for none)"
	}
	fs.StringVar(&f.UIAddr, "ui-addr", uiDefault, uiHelp)
	fs.StringVar(&f.UIToken, "ui-token", "", "require this token to open the dashboard (open it once as URL?token=TOKEN); advised when --ui-addr is not loopback")
	fs.BoolVar(&f.UIActions, "ui-actions", false, "let the dashboard stop jobs and shut actors down (read-only without it)")
}

// Listen opens the listeners the flags ask for; an address in use or
// malformed is a usage error naming its flag (exit 2). A dashboard bound
// beyond loopback without a token is warned about on warn.
func (f *Flags) Listen(warn io.Writer) (metrics, ui net.Listener, err error) {
	if f.MetricsAddr != "" {
		if metrics, err = daemon.Listen("--metrics-addr", f.MetricsAddr); err != nil {
			return nil, nil, err
		}
	}
	if f.UIAddr != "" && f.UIAddr != "off" {
		if ui, err = daemon.Listen("--ui-addr", f.UIAddr); err != nil {
			if metrics != nil {
				metrics.Close()
			}
			return nil, nil, err
		}
		if !daemon.IsLoopback(ui) && f.UIToken == "" {
			fmt.Fprintf(warn, "warning: the dashboard at %s is reachable beyond this host and needs no token: anyone who can reach it sees every job, its command and its logs (set --ui-token, or bind --ui-addr to 127.0.0.1)\n", ui.Addr())
		}
	} else if f.UIActions || f.UIToken != "" {
		return nil, nil, daemon.Usagef("--ui-actions and --ui-token need --ui-addr")
	}
	return metrics, ui, nil
}
