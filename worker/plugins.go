package worker

import (
	"github.com/frayhq/fray/actors"
	"github.com/frayhq/fray/jobs"
)

// addPlugins adds the plugins that Actors and Jobs ask for to Plugins.
func (o *Options) addPlugins() error {
	if o.Actors != nil {
		o.Plugins = append(o.Plugins, actors.NewHost(o.Actors, actors.HostOptions{Logger: o.Logger.With("plugin", "actors")}))
	}
	if o.Jobs != nil {
		ro := *o.Jobs
		if ro.Logger == nil {
			ro.Logger = o.Logger.With("plugin", "jobs")
		}
		r, err := jobs.NewRunner(ro)
		if err != nil {
			return err
		}
		o.Plugins = append(o.Plugins, r)
	}
	return nil
}
