package main

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"

	"github.com/spf13/cobra"

	"github.com/strata-mq/strata/client/admin"
	"github.com/strata-mq/strata/internal/naming"
)

// `strata admin`: pulsar-admin's commands over the admin REST API
// (package client/admin). Get, list and stats commands print indented
// JSON; successful changes print nothing; failures return the server's
// reason, which main prints on stderr with a non-zero exit code.

// adminConn holds the connection flags shared by every admin command.
type adminConn struct {
	url     string
	token   string
	tlsCA   string
	tlsCert string
	tlsKey  string
}

func (a *adminConn) client() (*admin.Client, error) {
	var opts []admin.Option
	if a.token != "" {
		opts = append(opts, admin.WithToken(a.token))
	}
	if a.tlsCA != "" || a.tlsCert != "" || a.tlsKey != "" {
		opts = append(opts, admin.WithTLS(a.tlsCA, a.tlsCert, a.tlsKey))
	}
	return admin.New(a.url, opts...)
}

func newAdminCmd() *cobra.Command {
	conn := &adminConn{}
	cmd := &cobra.Command{
		Use:   "admin",
		Short: "Administer clusters, tenants, namespaces and topics (like pulsar-admin)",
		Long: `Administer a Strata cluster over its admin REST API (/admin/v2, Pulsar's paths).

Topics may be given as "t" (persistent://public/default/t), "tenant/ns/t" or
"persistent://tenant/ns/t"; namespaces as "tenant/ns". Sizes take k/m/g/t
suffixes ("10G") and times s/m/h/d/w/y ("3d"), as pulsar-admin does.
Get, list and stats commands print JSON; changes print nothing on success.`,
		SilenceUsage: true,
	}
	f := cmd.PersistentFlags()
	f.StringVar(&conn.url, "admin-url", "http://127.0.0.1:8080", "admin (HTTP) URL of any broker (env STRATA_ADMIN_URL)")
	f.StringVar(&conn.token, "token", "", "JWT to authenticate with (env STRATA_TOKEN)")
	f.StringVar(&conn.tlsCA, "tls-trust-certs-file", "", "CA certificates (PEM) to trust for https")
	f.StringVar(&conn.tlsCert, "tls-cert-file", "", "client certificate (PEM) for https")
	f.StringVar(&conn.tlsKey, "tls-key-file", "", "client key (PEM) for https")
	cmd.AddCommand(newAdminClustersCmd(conn), newAdminTenantsCmd(conn), newAdminNamespacesCmd(conn), newAdminTopicsCmd(conn), newAdminBookiesCmd(conn), newAdminSchemasCmd(conn))
	return cmd
}

// adminCall is one admin command being run.
type adminCall struct {
	ctx  context.Context
	c    *admin.Client
	cmd  *cobra.Command
	args []string
}

// command builds an admin subcommand taking nargs positional arguments.
func (a *adminConn) command(use, short string, nargs int, fn func(x *adminCall) error) *cobra.Command {
	return &cobra.Command{
		Use:   use,
		Short: short,
		Args:  cobra.ExactArgs(nargs),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := a.client()
			if err != nil {
				return err
			}
			ctx, cancel := signalContext()
			defer cancel()
			return fn(&adminCall{ctx: ctx, c: c, cmd: cmd, args: args})
		},
	}
}

// group is a command that only holds subcommands.
func group(use, short string, subs ...*cobra.Command) *cobra.Command {
	cmd := &cobra.Command{Use: use, Short: short}
	cmd.AddCommand(subs...)
	return cmd
}

// print writes v as indented JSON on stdout.
func (x *adminCall) print(v any) error {
	var b strings.Builder
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	enc.SetIndent("", "  ")
	if err := enc.Encode(v); err != nil {
		return err
	}
	_, err := fmt.Fprint(x.cmd.OutOrStdout(), b.String())
	return err
}

// info writes a message for humans on stderr.
func (x *adminCall) info(format string, args ...any) {
	fmt.Fprintf(x.cmd.ErrOrStderr(), format+"\n", args...)
}

// topic parses the first argument as a topic name (the error names it).
func (x *adminCall) topic() (naming.Topic, error) { return naming.ParseTopic(x.args[0]) }

// namespace parses the first argument as "tenant/ns" (the error names it).
func (x *adminCall) namespace() (string, error) {
	ns, err := naming.ParseNamespace(x.args[0])
	return ns.String(), err
}
