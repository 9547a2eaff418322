package main

import (
	"encoding/json"
	"fmt"
	"text/tabwriter"

	healthpb "google.golang.org/grpc/health/grpc_health_v1"
)

// modelJSON is one line of "models --json".
type modelJSON struct {
	ID         string `json:"id"`
	Kind       string `json:"kind"`
	Dimensions uint32 `json:"dimensions"`
	MaxLength  uint32 `json:"max_length"`
	Pooling    string `json:"pooling"`
	Normalize  bool   `json:"normalize"`
	Device     string `json:"device"`
	Default    bool   `json:"default"`
}

func modelsCmd(e *env, args []string) int {
	fs := e.newFlagSet("models", "models [--json]\n\nDescribes the server's models, as a table or as JSON lines.")
	asJSON := fs.Bool("json", false, "print JSON lines instead of a table")
	if pos, err := parseInterspersed(fs, args); err != nil {
		return parseExit(err)
	} else if len(pos) > 0 {
		return e.usageErr("models", "unexpected argument %q", pos[0])
	}
	c, code := e.connect("models")
	if c == nil {
		return code
	}
	defer c.Close()
	models, err := c.ListModels(e.ctx)
	if err != nil {
		return e.fail("models", err)
	}
	if *asJSON {
		enc := json.NewEncoder(e.stdout)
		for _, m := range models {
			if err := enc.Encode(modelJSON{
				ID: m.GetId(), Kind: m.GetKind(), Dimensions: m.GetDimensions(), MaxLength: m.GetMaxLength(),
				Pooling: m.GetPooling(), Normalize: m.GetNormalize(), Device: m.GetDevice(), Default: m.GetDefault(),
			}); err != nil {
				return e.fail("models", fmt.Errorf("writing output: %w", err))
			}
		}
		return 0
	}
	tw := tabwriter.NewWriter(e.stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tKIND\tDIMENSIONS\tMAX LENGTH\tPOOLING\tNORMALIZE\tDEVICE\tDEFAULT")
	for _, m := range models {
		def := ""
		if m.GetDefault() {
			def = "*"
		}
		fmt.Fprintf(tw, "%s\t%s\t%d\t%d\t%s\t%t\t%s\t%s\n", m.GetId(), m.GetKind(), m.GetDimensions(), m.GetMaxLength(), m.GetPooling(), m.GetNormalize(), m.GetDevice(), def)
	}
	if err := tw.Flush(); err != nil {
		return e.fail("models", fmt.Errorf("writing output: %w", err))
	}
	return 0
}

func healthCmd(e *env, args []string) int {
	fs := e.newFlagSet("health", "health [--service NAME]\n\nPrints the server's health status (SERVING, NOT_SERVING, ...); the exit status is 0\nonly when it is SERVING.")
	service := fs.String("service", "", "the service to ask about, e.g. embedd.v1.EmbeddingService (default: the whole server)")
	if pos, err := parseInterspersed(fs, args); err != nil {
		return parseExit(err)
	} else if len(pos) > 0 {
		return e.usageErr("health", "unexpected argument %q", pos[0])
	}
	c, code := e.connect("health")
	if c == nil {
		return code
	}
	defer c.Close()
	st, err := c.Health(e.ctx, *service)
	if err != nil {
		return e.fail("health", err)
	}
	fmt.Fprintln(e.stdout, st)
	if st != healthpb.HealthCheckResponse_SERVING {
		return 1
	}
	return 0
}
