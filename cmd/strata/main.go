// Command strata is the one Strata binary: standalone, bookie, broker,
// init-cluster, client, admin, perf and tokens subcommands.
package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/KimMachineGun/automemlimit/memlimit"
	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
)

func main() {
	root := newRootCmd()
	if err := root.Execute(); err != nil {
		var ee exitError
		if errors.As(err, &ee) {
			if ee.msg != "" {
				fmt.Fprintln(os.Stderr, "strata:", ee.msg)
			}
			os.Exit(ee.code)
		}
		fmt.Fprintln(os.Stderr, "strata:", err)
		os.Exit(1)
	}
}

// exitError ends the process with a specific code (after printing msg).
type exitError struct {
	code int
	msg  string
}

func (e exitError) Error() string { return e.msg }

type globalFlags struct {
	logLevel  string
	logFormat string
}

var global globalFlags

func newRootCmd() *cobra.Command {
	root := &cobra.Command{
		Use:           "strata",
		Short:         "Strata: a durable, multi-tenant message broker with tiered storage",
		SilenceUsage:  true,
		SilenceErrors: true,
		PersistentPreRunE: func(cmd *cobra.Command, args []string) error {
			if err := bindEnv(cmd); err != nil {
				return err
			}
			return setupLogging()
		},
	}
	root.PersistentFlags().StringVar(&global.logLevel, "log-level", "info", "log level: debug, info, warn, error")
	root.PersistentFlags().StringVar(&global.logFormat, "log-format", "text", "log format: text or json")
	root.AddCommand(newBookieCmd(), newBrokerCmd(), newInitClusterCmd(), newStandaloneCmd(), newClientCmd(), newPerfCmd(),
		newAdminCmd(), newTokensCmd())
	root.SetFlagErrorFunc(func(c *cobra.Command, err error) error {
		return fmt.Errorf("%w\nRun '%s --help' for usage", err, c.CommandPath())
	})
	return root
}

// bindEnv gives every flag not set on the command line the value of its
// STRATA_* environment variable: --etcd-endpoints <- STRATA_ETCD_ENDPOINTS.
func bindEnv(cmd *cobra.Command) error {
	var err error
	cmd.Flags().VisitAll(func(f *pflag.Flag) {
		if f.Changed || err != nil {
			return
		}
		env := "STRATA_" + strings.ToUpper(strings.ReplaceAll(f.Name, "-", "_"))
		if v, ok := os.LookupEnv(env); ok {
			if e := cmd.Flags().Set(f.Name, v); e != nil {
				err = fmt.Errorf("environment %s=%q: %w", env, v, e)
			}
		}
	})
	return err
}

func setupLogging() error {
	var level slog.Level
	if err := level.UnmarshalText([]byte(global.logLevel)); err != nil {
		return fmt.Errorf("--log-level %q: %w", global.logLevel, err)
	}
	opts := &slog.HandlerOptions{Level: level}
	switch global.logFormat {
	case "text":
		slog.SetDefault(slog.New(slog.NewTextHandler(os.Stderr, opts)))
	case "json":
		slog.SetDefault(slog.New(slog.NewJSONHandler(os.Stderr, opts)))
	default:
		return fmt.Errorf("--log-format %q: want text or json", global.logFormat)
	}
	return nil
}

// setMemoryLimit gives the Go runtime a soft memory limit of 90 % of the
// container's (cgroup) memory limit, unless GOMEMLIMIT or AUTOMEMLIMIT
// says otherwise: the garbage collector then works harder as the heap
// nears the limit instead of letting it grow to twice what is live and
// the kernel kill the process (docs/security.md, "Limits").
func setMemoryLimit() {
	limit, err := memlimit.Set(memlimit.WithRatio(0.9), memlimit.WithLogger(slog.Default()))
	switch {
	case err != nil:
		slog.Warn("no soft memory limit set", "err", err)
	case limit < math.MaxInt64:
		slog.Info("soft memory limit", "bytes", limit)
	}
}

// signalContext is cancelled on SIGINT or SIGTERM.
func signalContext() (context.Context, context.CancelFunc) {
	return signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
}
