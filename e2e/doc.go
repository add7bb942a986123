// Package e2e holds the end-to-end tests of chaos: they build the real
// chaos and demo-shop binaries, run real experiments against the real demo
// service, and look at what is left on the machine afterwards (listening
// ports, plugin processes), not only at what the tool says.
//
// It has no code of its own outside its tests and must never be imported.
package e2e
