package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"reflect"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
)

// The command line is a cobra command tree: every command and subcommand answers -h and --help
// (and `social help COMMAND`) with one format — usage, flags, and the environment variables it
// reads — and does nothing else. Configuration is parsed, logged and used only in a command's
// RunE, so help, bad flags and bad arguments never open a port, a database or a broker.

// envAnnotation names, comma-separated, the environment variables a command reads (help prints
// them with their defaults from Config and their meaning from envDocs).
const envAnnotation = "env"

// envDocs is the one-line meaning of every variable Config reads, for help. Defaults come from
// defaultConfig; the README's table says more.
var envDocs = map[string]string{
	"DATABASE_URL":               "PostgreSQL connection URL",
	"AMQP_URL":                   "RabbitMQ URL; several comma-separated cluster nodes allowed",
	"AMQP_EXCHANGE":              "the direct exchange of the feed",
	"JWT_SECRET":                 "HS256 key for tokens, at least 32 bytes",
	"TOKEN_TTL":                  "lifetime of issued tokens",
	"HTTP_ADDR":                  "listen address of the API and the page",
	"WS_ADDR":                    "listen address of the websocket, health and metrics",
	"DISPATCHER_ADDR":            "listen address of the dispatcher's health and metrics",
	"WS_ALLOWED_ORIGINS":         "extra browser origins allowed to open the websocket, comma-separated",
	"WS_SEND_QUEUE_BYTES":        "frame bytes queued per websocket before it is closed with 1013",
	"WS_MAX_SOCKETS_PER_USER":    "websockets one user may hold on this instance; the next gets 429",
	"WS_DIALOG_QUEUE_BYTES":      "dialog frame bytes queued per websocket; past it they are dropped and a resync names them",
	"WS_HANDSHAKES_PER_USER":     "websocket handshakes per user per minute on this instance before 429",
	"WS_RESUME_WAIT":             "how long a resume waits for its user's turn (one at a time) before 429",
	"WS_MAX_SOCKETS":             "websockets this instance holds; the next gets 503; 0: open-file limit less 1,024",
	"WS_MAX_SOCKETS_PER_ADDRESS": "websockets one client address may hold on this instance; the next gets 429",
	"WS_RESUME_MAX_FRAMES":       "most frames one resume (?since=) sends before a resync frame",
	"LOG_LEVEL":                  "debug, info, warn or error",
	"REALTIME_INSTANCE_ID":       "this realtime instance's routing key; empty: a fresh rt-<uuid> per start",
	"REALTIME_LEASE":             "how long an instance's registration lives without renewal",
	"DB_MAX_CONNS":               "PostgreSQL pool size",
	"REQUEST_TIMEOUT":            "bound of one API request (503 after it)",
	"BCRYPT_COST":                "password hashing cost",
	"BCRYPT_CONCURRENCY":         "passwords hashed at once; 0: half the processors",
	"HTTP_READ_HEADER_TIMEOUT":   "a request's headers must arrive within it",
	"HTTP_READ_TIMEOUT":          "the whole request, body included, must arrive within it (408)",
	"HTTP_WRITE_TIMEOUT":         "a response must be taken within it (more than REQUEST_TIMEOUT)",
	"HTTP_IDLE_TIMEOUT":          "an idle keep-alive connection is closed after it",
	"HTTP_TRUSTED_PROXIES":       "CIDRs whose X-Real-IP names the client; none: trust no one",
	"FEED_PAGE_MAX_BYTES":        "largest /post/feed and /post/list response; a bigger page ends early with a Link",
	"FEED_MAX_OFFSET":            "largest /post/feed and /post/list offset; deeper pages by the cursor of the Link header",
	"EXPENSIVE_READS_PER_USER":   "feed, user's posts, follow list, dialog and search reads one user runs at once before 429",
	"DB_READ_TIMEOUT":            "PostgreSQL statement_timeout of those reads; longer is 503",
	"FOLLOWS_PER_USER":           "follows per user per day before 429",
	"LOGIN_FAILURES_PER_ACCOUNT": "failed logins per account per window before 429",
	"LOGIN_FAILURES_PER_ADDRESS": "failed logins per client address per window before 429",
	"LOGIN_FAILURE_WINDOW":       "the window of the login throttle",
	"REGISTRATIONS_PER_ADDRESS":  "registrations per client address per minute before 429",
	"POSTS_PER_USER":             "post writes (create, update, delete) per user per minute before 429",
	"DIALOG_SENDS_PER_USER":      "dialog messages sent per user per minute before 429",
	"SHUTDOWN_TIMEOUT":           "bound of a graceful shutdown",
}

// Which variables each command reads. Every command that parses the configuration validates all
// of it (a typo in any variable fails early), but these are the ones that change what it does.
var (
	envServer = []string{"DATABASE_URL", "DB_MAX_CONNS", "LOG_LEVEL", "SHUTDOWN_TIMEOUT",
		"HTTP_READ_HEADER_TIMEOUT", "HTTP_READ_TIMEOUT", "HTTP_WRITE_TIMEOUT", "HTTP_IDLE_TIMEOUT"}
	envAPI = []string{"JWT_SECRET", "TOKEN_TTL", "HTTP_ADDR", "REQUEST_TIMEOUT", "BCRYPT_COST", "BCRYPT_CONCURRENCY",
		"FEED_PAGE_MAX_BYTES", "LOGIN_FAILURES_PER_ACCOUNT", "LOGIN_FAILURES_PER_ADDRESS", "LOGIN_FAILURE_WINDOW",
		"REGISTRATIONS_PER_ADDRESS", "FEED_MAX_OFFSET", "EXPENSIVE_READS_PER_USER", "DB_READ_TIMEOUT", "FOLLOWS_PER_USER", "POSTS_PER_USER", "DIALOG_SENDS_PER_USER",
		"HTTP_TRUSTED_PROXIES"}
	envRelay     = []string{"AMQP_URL", "AMQP_EXCHANGE"}
	envWebsocket = []string{"WS_ALLOWED_ORIGINS", "WS_SEND_QUEUE_BYTES", "WS_RESUME_MAX_FRAMES", "WS_MAX_SOCKETS_PER_USER",
		"WS_DIALOG_QUEUE_BYTES", "WS_HANDSHAKES_PER_USER", "WS_RESUME_WAIT",
		"WS_MAX_SOCKETS", "WS_MAX_SOCKETS_PER_ADDRESS", "HTTP_TRUSTED_PROXIES"}
	envOperator   = []string{"DATABASE_URL", "DB_MAX_CONNS", "LOG_LEVEL"}
	envRealtime   = []string{"AMQP_URL", "AMQP_EXCHANGE", "JWT_SECRET", "WS_ADDR"}
	envPresence   = []string{"REALTIME_INSTANCE_ID", "REALTIME_LEASE"}
	envDispatcher = []string{"DISPATCHER_ADDR"}
)

func envList(groups ...[]string) string {
	var out []string
	seen := map[string]bool{}
	for _, g := range groups {
		for _, name := range g {
			if !seen[name] {
				seen[name] = true
				out = append(out, name)
			}
		}
	}
	return strings.Join(out, ",")
}

// usageError is a mistake on the command line: exit status 2, with a hint to --help.
type usageError struct {
	cmd string // e.g. "social outbox replay"
	err error
}

func (e *usageError) Error() string {
	return fmt.Sprintf("%s: %v\nRun '%s --help' for usage.", e.cmd, e.err, e.cmd)
}

func (e *usageError) Unwrap() error { return e.err }

func newUsageError(cmd *cobra.Command, format string, args ...any) error {
	return &usageError{cmd: cmd.CommandPath(), err: fmt.Errorf(format, args...)}
}

// noArgs refuses positional arguments as a usage error.
func noArgs(cmd *cobra.Command, args []string) error {
	if len(args) > 0 {
		return newUsageError(cmd, "unexpected argument %q", args[0])
	}
	return nil
}

// group is a command with subcommands only (social, social outbox): run bare, it prints its help
// to stderr and fails; run with an unknown name, it says so and suggests the nearest.
func group(cmd *cobra.Command, args []string) error {
	if len(args) == 0 {
		cmd.SetOut(cmd.ErrOrStderr())
		_ = cmd.Help()
		return &usageError{cmd: cmd.CommandPath(), err: errors.New("a command is required")}
	}
	msg := fmt.Sprintf("unknown command %q", args[0])
	if s := cmd.SuggestionsFor(args[0]); len(s) > 0 {
		msg += fmt.Sprintf(" (did you mean %q?)", s[0])
	}
	return &usageError{cmd: cmd.CommandPath(), err: errors.New(msg)}
}

// configured wraps a command's work: parse the configuration from the environment, make the
// logger, log every setting once (secrets masked), then run fn. Only commands that are really
// run get here, so help never parses or logs anything.
func (a *app) configured(environ map[string]string, level slog.Level, fn func(cmd *cobra.Command, args []string) error) func(*cobra.Command, []string) error {
	return func(cmd *cobra.Command, args []string) error {
		cfg, err := parseConfig(environ)
		if err != nil {
			return err
		}
		a.cfg = cfg
		a.log = newLogger(cfg.LogLevel, a.stderr, a.stderrTTY)
		a.log.Log(cmd.Context(), level, "configuration", slog.String("command", cmd.CommandPath()), slog.Any("config", cfg))
		return fn(cmd, args)
	}
}

const rootLong = `social — a social network whose posts reach friends in real time.

One binary: the REST API and the web page, the outbox dispatcher, the realtime websocket workers,
and the operator tools. Configuration comes from environment variables (below; README.md,
"Configuration"), parsed once at start and logged with secrets masked.`

// rootCommand is the whole command line of the binary.
func (a *app) rootCommand(environ map[string]string) *cobra.Command {
	root := &cobra.Command{
		Use:   "social",
		Short: "a social network whose posts reach friends in real time",
		Long:  rootLong,
		Args:  cobra.ArbitraryArgs,
		RunE:  group,
		Annotations: map[string]string{envAnnotation: envList(envServer, envAPI, envRelay, envRealtime,
			envWebsocket, envDispatcher)},
		SilenceErrors:     true,
		SilenceUsage:      true,
		CompletionOptions: cobra.CompletionOptions{DisableDefaultCmd: true},
	}
	root.SetFlagErrorFunc(func(cmd *cobra.Command, err error) error { return &usageError{cmd: cmd.CommandPath(), err: err} })
	root.SetUsageTemplate(usageTemplate)
	root.SetHelpTemplate(helpTemplate)
	root.SetOut(a.stdout)
	root.SetErr(a.stderr)
	info, debug := slog.LevelInfo, slog.LevelDebug

	root.AddCommand(&cobra.Command{
		Use:   "all",
		Short: "migrate, then run api + dispatcher + realtime + web page in one process",
		Long: `Applies the migrations, then serves the REST API, the web page, the websocket
/post/feed/posted, /healthz, /readyz and /metrics on HTTP_ADDR, and runs the dispatcher, all in
one process: for development and 'make run'. With HTTP_ADDR unset and another program on
:8080, it serves on the first free port after it and says which. Without JWT_SECRET it picks a
random secret and says so (tokens then do not survive a restart). Stops gracefully on
SIGINT/SIGTERM.`,
		Args:        noArgs,
		Annotations: map[string]string{envAnnotation: envList(envServer, envAPI, envRelay, envWebsocket, envPresence)},
		RunE: a.configured(environ, info, func(cmd *cobra.Command, _ []string) error {
			return a.runAll(cmd.Context(), environ["HTTP_ADDR"] != "")
		}),
	})
	root.AddCommand(&cobra.Command{
		Use:   "api",
		Short: "serve the REST API and the web page on HTTP_ADDR",
		Long: `Serves the REST API (docs/design.md §2, /openapi.yaml), the web page, /healthz, /readyz
and /metrics on HTTP_ADDR. JWT_SECRET is required. Refuses an outdated schema (run
'social migrate'). Stops gracefully on SIGINT/SIGTERM.`,
		Args:        noArgs,
		Annotations: map[string]string{envAnnotation: envList(envServer, envAPI)},
		RunE:        a.configured(environ, info, func(cmd *cobra.Command, _ []string) error { return a.runAPI(cmd.Context()) }),
	})
	root.AddCommand(&cobra.Command{
		Use:   "dispatcher",
		Short: "relay the outbox to RabbitMQ",
		Long: `Relays the outbox to RabbitMQ (exchange AMQP_EXCHANGE), choosing the message shape by the
broker's version; serves /healthz, /readyz and /metrics on DISPATCHER_ADDR. Several may run at
once. Refuses an outdated schema (run 'social migrate'). Stops gracefully on SIGINT/SIGTERM.`,
		Args:        noArgs,
		Annotations: map[string]string{envAnnotation: envList(envServer, envRelay, envDispatcher)},
		RunE: a.configured(environ, info, func(cmd *cobra.Command, _ []string) error {
			return a.runDispatcher(cmd.Context())
		}),
	})
	root.AddCommand(&cobra.Command{
		Use:   "realtime",
		Short: "serve the websocket /post/feed/posted on WS_ADDR",
		Long: `Serves the websocket /post/feed/posted (docs/design.md §4) with /healthz, /readyz and
/metrics on WS_ADDR, fed by one exclusive queue on AMQP_EXCHANGE. JWT_SECRET is required (the
api's). Refuses an outdated schema (run 'social migrate'). On SIGINT/SIGTERM it closes every
socket with 1001, so clients reconnect elsewhere.`,
		Args:        noArgs,
		Annotations: map[string]string{envAnnotation: envList(envServer, envRealtime, envWebsocket, envPresence)},
		RunE:        a.configured(environ, info, func(cmd *cobra.Command, _ []string) error { return a.runRealtime(cmd.Context()) }),
	})
	root.AddCommand(&cobra.Command{
		Use:   "migrate",
		Short: "create the database if missing and apply the embedded SQL migrations",
		Long: `Creates the database of DATABASE_URL if it does not exist, then applies the embedded
migrations/*.sql that are not applied yet. Idempotent.`,
		Args:        noArgs,
		Annotations: map[string]string{envAnnotation: envList(envOperator)},
		RunE:        a.configured(environ, info, func(cmd *cobra.Command, _ []string) error { return a.runMigrate(cmd.Context()) }),
	})
	root.AddCommand(a.outboxCommand(environ, debug))
	root.AddCommand(&cobra.Command{
		Use:   "healthcheck URL",
		Short: "exit 0 when URL answers: HTTP 200, or a PostgreSQL login (health checks)",
		Long: `Exits 0 when URL answers within 3 s, 1 otherwise: an http:// URL with 200 to a GET, a
postgres:// URL with a login and a ping. The container image has no curl: compose's health checks
run 'social healthcheck http://127.0.0.1:PORT/readyz'; scripts/services asks it whether PostgreSQL
lets user postgres in. Reads no configuration.`,
		Example: "  social healthcheck http://127.0.0.1:8080/readyz\n  social healthcheck postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable",
		Args: func(cmd *cobra.Command, args []string) error {
			if len(args) != 1 {
				return newUsageError(cmd, "want exactly one URL, got %d arguments", len(args))
			}
			return nil
		},
		RunE: func(cmd *cobra.Command, args []string) error { return runHealthcheck(cmd.Context(), args[0]) },
	})
	root.InitDefaultHelpCmd()
	for _, c := range root.Commands() {
		if c.Name() == "help" {
			c.Short = "show the help of any command: social help outbox replay"
			c.Long = "Shows the help of a command, as 'social COMMAND --help' does."
		}
	}
	return root
}

// run executes one command line against environ (the process environment in main, a map in tests).
func (a *app) run(ctx context.Context, args []string, environ map[string]string) error {
	root := a.rootCommand(environ)
	root.SetArgs(args)
	return root.ExecuteContext(ctx)
}

// Help and usage: one format for every command.
const helpTemplate = `{{with (or .Long .Short)}}{{. | trimTrailingWhitespaces}}

{{end}}{{.UsageString}}`

const usageTemplate = `Usage:{{if .Runnable}}{{if .HasAvailableSubCommands}}
  {{.CommandPath}} <command> [flags]{{else}}
  {{.UseLine}}{{end}}{{end}}{{if .HasExample}}

Examples:
{{.Example}}{{end}}{{if .HasAvailableSubCommands}}

Commands:{{range .Commands}}{{if (or .IsAvailableCommand (eq .Name "help"))}}
  {{rpad .Name .NamePadding }}  {{.Short}}{{end}}{{end}}{{end}}

Flags:
{{.LocalFlags.FlagUsages | trimTrailingWhitespaces}}{{if .HasAvailableInheritedFlags}}

Global flags:
{{.InheritedFlags.FlagUsages | trimTrailingWhitespaces}}{{end}}

Environment:
{{envHelp .}}{{if .HasAvailableSubCommands}}

Run '{{.CommandPath}} <command> --help' for a command's flags and environment.{{end}}
`

func init() {
	cobra.AddTemplateFunc("envHelp", envHelp)
}

// envHelp lists the variables a command reads, with their defaults and meaning.
func envHelp(cmd *cobra.Command) string {
	names := cmd.Annotations[envAnnotation]
	if names == "" {
		return "  (none: this command reads no configuration)"
	}
	defaults := envDefaults()
	var b strings.Builder
	tw := tabwriter.NewWriter(&b, 0, 0, 2, ' ', 0)
	for _, name := range strings.Split(names, ",") {
		def := defaults[name]
		switch {
		case def == "" && name == "JWT_SECRET":
			def = "required; 'all' picks a random one"
		case def == "":
			def = "unset"
		default:
			def = "default " + def
		}
		fmt.Fprintf(tw, "  %s\t%s (%s)\n", name, envDocs[name], def)
	}
	_ = tw.Flush()
	return strings.TrimRight(b.String(), "\n")
}

// envDefaults maps each variable of Config to its default (defaultConfig) as a user would write
// it; "" for none.
func envDefaults() map[string]string {
	out := map[string]string{}
	v, t := reflect.ValueOf(defaultConfig()), reflect.TypeOf(Config{})
	for i := range t.NumField() {
		name := envName(t.Field(i))
		if name == "" {
			continue
		}
		switch x := v.Field(i).Interface().(type) {
		case time.Duration:
			out[name] = shortDuration(x)
		case []string:
			out[name] = strings.Join(x, ",")
		case string:
			out[name] = x
		default:
			out[name] = fmt.Sprint(x)
		}
	}
	return out
}

// shortDuration writes d as a user would: 24h, 2m, 10s (time.Duration.String says 24h0m0s).
func shortDuration(d time.Duration) string {
	s := d.String()
	if strings.HasSuffix(s, "m0s") {
		s = strings.TrimSuffix(s, "0s")
	}
	if strings.HasSuffix(s, "h0m") {
		s = strings.TrimSuffix(s, "0m")
	}
	return s
}

// envName is the variable a Config field reads ("" for none).
func envName(f reflect.StructField) string {
	name, _, _ := strings.Cut(f.Tag.Get("env"), ",")
	return name
}
