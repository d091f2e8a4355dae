package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/strata-mq/strata/client"
)

// connFlags are the connection flags of client, perf (and admin) commands.
type connFlags struct {
	url     string
	token   string
	tlsCA   string
	tlsCert string
	tlsKey  string
}

func (c *connFlags) register(f *pflag.FlagSet) {
	f.StringVar(&c.url, "url", "127.0.0.1:6650", "broker service URL: host:port, pulsar://host:port or pulsar+ssl://host:port; several hosts comma-separated")
	f.StringVar(&c.token, "token", "", "JWT to authenticate with (env STRATA_TOKEN)")
	f.StringVar(&c.tlsCA, "tls-trust-certs-file", "", "CA certificates to trust; enables TLS")
	f.StringVar(&c.tlsCert, "tls-cert-file", "", "client certificate for TLS")
	f.StringVar(&c.tlsKey, "tls-key-file", "", "client key for TLS")
}

func (c *connFlags) client() (*client.Client, error) {
	var opts []client.ClientOption
	if c.token != "" {
		opts = append(opts, client.WithToken(c.token))
	}
	if c.tlsCA != "" || c.tlsCert != "" {
		opts = append(opts, client.WithTLS(c.tlsCA, c.tlsCert, c.tlsKey))
	}
	return client.New(c.url, opts...)
}

func newClientCmd() *cobra.Command {
	cmd := &cobra.Command{Use: "client", Short: "Produce and consume messages (like pulsar-client)"}
	cmd.AddCommand(newProduceCmd(), newConsumeCmd())
	return cmd
}

func newProduceCmd() *cobra.Command {
	var (
		conn     connFlags
		messages []string
		n        int
		key      string
		props    []string
		batching bool
	)
	cmd := &cobra.Command{
		Use:   "produce TOPIC",
		Short: "Publish messages: -m MSG (repeatable), or one message per line of stdin",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if n < 1 {
				return fmt.Errorf("-n must be at least 1")
			}
			properties := map[string]string{}
			for _, p := range props {
				k, v, ok := strings.Cut(p, "=")
				if !ok {
					return fmt.Errorf("property %q is not key=value", p)
				}
				properties[k] = v
			}
			ctx, cancel := signalContext()
			defer cancel()
			cl, err := conn.client()
			if err != nil {
				return err
			}
			defer cl.Close()
			var popts []client.ProducerOption
			if !batching {
				popts = append(popts, client.WithoutBatching())
			}
			p, err := cl.CreateProducer(ctx, args[0], popts...)
			if err != nil {
				return err
			}
			defer p.Close()
			var firstErr error
			sent := 0
			send := func(payload string) {
				p.SendAsync(ctx, &client.ProducerMessage{Payload: []byte(payload), Key: key, Properties: properties},
					func(_ client.MessageID, _ *client.ProducerMessage, err error) {
						if err != nil && firstErr == nil {
							firstErr = err
						}
					})
				sent++
			}
			if len(messages) > 0 {
				for i := 0; i < n; i++ {
					for _, m := range messages {
						send(m)
					}
				}
			} else {
				sc := bufio.NewScanner(cmd.InOrStdin())
				sc.Buffer(make([]byte, 64<<10), 5<<20)
				var lines []string
				for sc.Scan() {
					lines = append(lines, sc.Text())
				}
				if err := sc.Err(); err != nil {
					return fmt.Errorf("reading stdin: %w", err)
				}
				for i := 0; i < n; i++ {
					for _, l := range lines {
						send(l)
					}
				}
			}
			if err := p.Flush(ctx); err != nil {
				return err
			}
			if firstErr != nil {
				return firstErr
			}
			fmt.Fprintf(cmd.ErrOrStderr(), "%d messages produced to %s\n", sent, args[0])
			return nil
		},
	}
	f := cmd.Flags()
	conn.register(f)
	f.StringArrayVarP(&messages, "messages", "m", nil, "message to send (repeatable); without it, each line of stdin is a message")
	f.IntVarP(&n, "num-produce", "n", 1, "how many times to send the messages")
	f.StringVarP(&key, "key", "k", "", "message key")
	f.StringArrayVarP(&props, "property", "p", nil, "message property key=value (repeatable)")
	f.BoolVar(&batching, "batching", true, "batch messages")
	return cmd
}

func newConsumeCmd() *cobra.Command {
	var (
		conn    connFlags
		sub     string
		n       int
		typ     string
		pos     string
		timeout time.Duration
	)
	cmd := &cobra.Command{
		Use:   "consume TOPIC",
		Short: "Receive messages and print one payload per line (acknowledging each)",
		Long: `Subscribe and print each message payload on its own line, acknowledging it.
Exits 0 after -n messages (0: run until interrupted), non-zero if --timeout
passes first.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if sub == "" {
				return errors.New("-s/--subscription-name is required")
			}
			st, err := client.ParseSubscriptionType(typ)
			if err != nil {
				return err
			}
			var initial client.InitialPosition
			switch strings.ToLower(pos) {
			case "latest":
				initial = client.Latest
			case "earliest":
				initial = client.Earliest
			default:
				return fmt.Errorf("-p %q: want Earliest or Latest", pos)
			}
			ctx, cancel := signalContext()
			defer cancel()
			if timeout > 0 {
				var c2 context.CancelFunc
				ctx, c2 = context.WithTimeout(ctx, timeout)
				defer c2()
			}
			cl, err := conn.client()
			if err != nil {
				return err
			}
			defer cl.Close()
			cons, err := cl.Subscribe(ctx, args[0], sub, client.WithSubscriptionType(st), client.WithInitialPosition(initial))
			if err != nil {
				if errors.Is(ctx.Err(), context.DeadlineExceeded) {
					return exitError{code: 3, msg: fmt.Sprintf("timed out after %v subscribing to %s: %v", timeout, args[0], err)}
				}
				return err
			}
			defer cons.Close()
			out := bufio.NewWriter(cmd.OutOrStdout())
			defer out.Flush()
			for got := 0; n == 0 || got < n; got++ {
				m, err := cons.Receive(ctx)
				if err != nil {
					out.Flush()
					if errors.Is(err, context.DeadlineExceeded) {
						return exitError{code: 3, msg: fmt.Sprintf("timed out after %v with %d of %d messages", timeout, got, n)}
					}
					if errors.Is(err, context.Canceled) {
						return nil
					}
					return err
				}
				out.Write(m.Payload)
				out.WriteByte('\n')
				if n == 0 {
					out.Flush()
				}
				if err := cons.AckWithResponse(ctx, m); err != nil {
					return fmt.Errorf("acknowledge: %w", err)
				}
			}
			return nil
		},
	}
	f := cmd.Flags()
	conn.register(f)
	f.StringVarP(&sub, "subscription-name", "s", "", "subscription name (required)")
	f.IntVarP(&n, "num-messages", "n", 1, "messages to receive (0: until interrupted)")
	f.StringVarP(&typ, "subscription-type", "t", "Exclusive", "Exclusive, Shared, Failover or Key_Shared")
	f.StringVarP(&pos, "subscription-position", "p", "Latest", "where a new subscription starts: Earliest or Latest")
	f.DurationVar(&timeout, "timeout", 0, "fail if the messages do not arrive within this long (0: wait forever)")
	return cmd
}
