// Package sdk is the whole contract between the chaos runner and a fault
// plugin: the handshake, the Fault interface a plugin implements, the gRPC
// adapters on both sides, Serve for a plugin's main, and Launch for the host.
// It is also the only chaos package a third-party plugin imports.
//
// A plugin is a separate process (hashicorp/go-plugin over gRPC with
// AutoMTLS), so a plugin that crashes cannot take the runner down, and the
// runner that crashes leaves a plugin that reverts what it injected. This
// package must never import the engine or any fault: it is the contract and
// nothing else.
//
// # Writing a plugin
//
// A plugin is a Go program whose main is one call:
//
//	func main() { _ = sdk.Serve(context.Background(), myfault.New()) }
//
// myfault.New returns a Fault:
//
//   - Describe names the plugin (the name files use in `plugin:`), its
//     version, the target kinds it acts on (KindEndpoint, KindKubernetes,
//     KindHost, KindProcess) and a JSON Schema of its `with` parameters.
//   - Validate checks a Request without touching anything. Decode the
//     parameters with DecodeParams(req.Params, schema, &v): the schema is the
//     one source of truth, each problem names its parameter ("with.status"),
//     and `chaos validate` shows it at its line and column in the file.
//   - Inject starts the fault and returns a handle naming it; it returns
//     only once the fault is in effect, and honours its context (a
//     cancelled context injects nothing).
//   - Revert ends what a handle names, and returns only once it is gone.
//     Reverting twice, or a handle from another process, is not an error:
//     wasActive says whether anything was live.
//
// Optional abilities are small interfaces found by type assertion:
// Preparer (stand something up before the steady state is checked, as a
// proxy passing traffic unchanged, so the steady state and the fault see the
// same path), Resolver (say which concrete things a target means now, each
// with a stable key for locks, the ledger and the blast radius; without it
// the target is one thing, DefaultResolution), RevertByID (undo an
// injection by its id alone, for faults that outlive the process: mark what
// you change with Request.ID), StatusReporter. A plugin that returns an
// error wrapping ErrRefused (its listen address is in use) gets the run
// refused rather than broken.
//
// # What the SDK does for you
//
// Leases: every Inject and Prepare carries Request.LeaseTTL; the server side
// of this package keeps the lease and reverts the handle by itself when the
// host stops renewing it. It also reverts everything on SIGTERM (the kernel
// sends it when the host dies), when the plugin's parent changes, and when
// the host closes it. Ids: the server keeps the id↔handle map, so a revert
// by id works for every plugin; ids it does not hold go to RevertByID when
// the plugin has it. Panics in a handler are recovered: everything the
// process holds is reverted, and the host is told ErrPluginPanicked. A
// goroutine your fault starts is covered only if it begins with
// `defer sdk.Guard(ctx)()`.
//
// # Testing: sdktest
//
// plugins/sdk/sdktest runs the conformance suite over real gRPC in the test
// process: Describe names a plugin, version, target kinds and schema; valid
// requests validate and the Invalid ones do not; inject takes effect and
// revert ends it (judged by your Case.Check looking at the real world, not
// at the plugin's memory); revert twice is fine; an expired lease reverts by
// itself; a renewed one keeps the fault; resolve gives stable keys; revert
// by id, by an unknown id, by a mismatched handle and id, and from a
// restarted plugin (Case.Fresh); a panicking handler reverts what the plugin
// holds; a cancelled context injects nothing. Every plugin's tests should
// call sdktest.Run.
//
// # Installing and pinning
//
// Build the plugin as chaos-plugin-NAME into the plugin directory
// (--plugin-dir, $CHAOS_PLUGIN_DIR, default $XDG_DATA_HOME/chaos/plugins or
// ~/.local/share/chaos/plugins; it must be yours and writable by nobody
// else), then run `chaos plugins lock` in the directory of your experiments:
// it starts each installed plugin once, asks its name and version, and
// writes plugins.lock with its SHA-256. Commit the lock file. chaos refuses
// an installed binary whose hash differs from its pin (naming both sums), a
// plugin the lock file does not name (unless --allow-unpinned), and a plugin
// with a built-in plugin's name. A plugin built against another
// ProtocolVersion is refused at the handshake with both versions named
// (ErrProtocolMismatch). examples/plugins/http-fault in the chaos repository
// is a complete plugin in its own module.
package sdk
