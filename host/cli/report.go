package cli

import (
	"context"
	"io"

	"github.com/eventhost/eventhost/host/config"
	"github.com/eventhost/eventhost/host/redisconn"
	"github.com/eventhost/eventhost/host/report"
	saleshistogram "github.com/eventhost/eventhost/plugins/sales-histogram"
)

func reportCmd(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlags("report", stderr)
	path := configFlag(fs)
	if err := parse(fs, args); err != nil {
		return err
	}
	cfg, err := loadConfig(*path, stderr)
	if err != nil {
		return err
	}
	layout, err := histogramLayout(cfg, stderr)
	if err != nil {
		return err
	}
	rdb, err := redisconn.New(cfg.Redis)
	if err != nil {
		return err
	}
	defer rdb.Close()
	r, err := report.Read(ctx, rdb, layout)
	if err != nil {
		return err
	}
	return r.Render(stdout)
}

// histogramLayout reads the counter type from the sales-histogram block, so
// the report decodes what the plugin writes.
func histogramLayout(cfg *config.Config, stderr io.Writer) (report.Layout, error) {
	for _, p := range cfg.Plugins {
		if p.Name != "sales-histogram" {
			continue
		}
		values, diags := config.DecodePluginConfig(p, saleshistogram.New().Describe().Config)
		printDiags(stderr, diags)
		if diags.HasErrors() {
			return report.Layout{}, usageError{diags}
		}
		counter, _ := values[saleshistogram.FieldCounter].(string)
		return report.Layout{Counter: counter}, nil
	}
	return report.Layout{}, nil
}
